"""zshot: few-shot robot adaptation, from simulation to the robot controller.

This package holds only what every other package may share: the command line and the
config loader. It must stay light: `runtime` (on the robot) imports it.
"""

__version__ = "0.1.0"
