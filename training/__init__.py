"""zshot training: PEARL, offline PEARL and baselines; export to ONNX.

Nothing imports this package except its own CLI and tests.
"""
