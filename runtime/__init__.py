"""zshot runtime: serves exported models over ZeroMQ on the robot controller.

Imports only the core dependencies (numpy, onnxruntime, pyzmq, pydantic, pyyaml): never
torch, pybullet, `training` or `sim` (tests/test_import_isolation.py checks it).
"""
