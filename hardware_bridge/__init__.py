"""zshot hardware bridge: the robot side (adapters, safety layer, watchdog, trials, recorder).

Imports `runtime.client` and `runtime.protocol`, never the runtime server, and never torch or `training`.
`sim` is imported lazily, only when a SimRobot is built.
"""
