"""zshot runtime: serves exported models over ZeroMQ on the robot controller.

Imports only the core dependencies (numpy, onnxruntime, pyzmq, pydantic, pyyaml): never
torch, pybullet, `training` or `sim` (tests/test_import_isolation.py checks it).

Modules:
    artifact   the exported artifact's schema, loader (hash/dim checks) and writer
    kinds      the artifact kinds (posterior, recurrent, conditioned, weights)
    protocol   the wire format (docs/PROTOCOL.md)
    client     `RuntimeClient`, the Python client (what the bridge imports, with protocol)
    posterior  PEARL's product-of-Gaussians posterior in natural parameters (O(1) updates;
               the posterior kind's session state)
    model      an artifact loaded into onnxruntime (its kind's graphs, batch 1)
    server     the ROUTER server: sessions, modes, reload, stats, error replies, CurveZMQ
    cli        `zshot serve` and `zshot keys`
"""
