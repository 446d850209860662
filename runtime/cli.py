"""`zshot serve` and `zshot keys`: the runtime's command line (no torch anywhere below)."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from types import FrameType

from zshot.config import load_config

__all__ = ["keys_main", "serve_main"]


def _serve_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="zshot serve",
        description="Serve an exported artifact (encoder.onnx + policy.onnx + manifest.json) "
        "over ZeroMQ. Protocol: docs/PROTOCOL.md.",
    )
    p.add_argument("artifact", help="artifact directory written by `zshot export`")
    p.add_argument("--bind", help="ZeroMQ endpoint (default from config: tcp://127.0.0.1:5555)")
    p.add_argument("--config", help="YAML file overriding runtime.config.ServeConfig defaults")
    p.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="override a config key"
    )
    p.add_argument(
        "--insecure",
        action="store_true",
        help="allow binding beyond loopback WITHOUT CurveZMQ (isolated networks only)",
    )
    p.add_argument("--curve-secret-key", help="server secret key file (NAME.key_secret)")
    p.add_argument("--allow-clients", help="directory of allowed client public keys (*.key)")
    p.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    return p


def serve_main(argv: Sequence[str]) -> int:
    """`zshot serve ARTIFACT_DIR --bind ENDPOINT`: run the runtime until SIGINT/SIGTERM;
    SIGHUP re-reads the CurveZMQ allow-list (so does a change of its directory)."""
    args = _serve_parser().parse_args(list(argv))
    logging.basicConfig(
        level=args.log_level, format="%(asctime)s %(name)s %(levelname)s %(message)s"
    )
    # Imported here so that `zshot serve --help` stays instant.
    from runtime.artifact import ArtifactError
    from runtime.config import ServeConfig
    from runtime.model import LoadedModel
    from runtime.protocol import endpoint_problem
    from runtime.server import RuntimeServer, SecurityError, apply_scheduling, describe

    if args.bind and (problem := endpoint_problem(args.bind, bind=True)) is not None:
        sys.stderr.write(f"zshot serve: --bind: {problem}\n")
        return 2
    overrides = list(args.set)
    if args.bind:
        overrides.append(f"bind={args.bind}")
    if args.insecure:
        overrides.append("insecure=true")
    if args.curve_secret_key:
        overrides.append(f"curve_secret_key={args.curve_secret_key}")
    if args.allow_clients:
        overrides.append(f"curve_allowed_clients={args.allow_clients}")
    cfg = load_config(ServeConfig, args.config, overrides)
    try:
        model = LoadedModel.load(args.artifact, cfg)
    except ArtifactError as exc:
        sys.stderr.write(f"zshot serve: refusing the artifact: {exc}\n")
        return 2
    apply_scheduling(cfg)  # before the ZeroMQ context: its I/O thread inherits it
    server = RuntimeServer(model, cfg)
    try:
        endpoint = server.bind()
    except (SecurityError, ValueError) as exc:
        sys.stderr.write(f"zshot serve: {exc}\n")
        server.stop()
        return 2

    def _stop(signum: int, frame: FrameType | None) -> None:
        server._stop.set()

    def _reread_keys(signum: int, frame: FrameType | None) -> None:
        server.request_allow_list_reload()

    signal.signal(signal.SIGINT, _stop)
    signal.signal(signal.SIGTERM, _stop)
    if hasattr(signal, "SIGHUP"):
        signal.signal(signal.SIGHUP, _reread_keys)
    print(f"zshot serve: listening on {endpoint}: {describe(model)}", flush=True)
    try:
        server.serve_forever()
    finally:
        server.stop()
    print("zshot serve: stopped", flush=True)
    return 0


def keys_main(argv: Sequence[str]) -> int:
    """`zshot keys generate --out DIR --name NAME`: write a CurveZMQ key pair."""
    p = argparse.ArgumentParser(prog="zshot keys", description="CurveZMQ keys for the runtime.")
    sub = p.add_subparsers(dest="action", required=True)
    g = sub.add_parser(
        "generate",
        help="write NAME.key (public, share it) and NAME.key_secret (keep it on this machine)",
    )
    g.add_argument("--out", required=True, help="directory to write the key files into")
    g.add_argument("--name", required=True, help="key name, e.g. server or robot1")
    g.add_argument("--force", action="store_true", help="overwrite existing files of that name")
    args = p.parse_args(list(argv))

    import zmq.auth

    name = args.name
    if not name or "/" in name or name.startswith("."):
        sys.stderr.write(f"zshot keys: bad key name {name!r} (a plain file name)\n")
        return 2
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    public, secret = out / f"{name}.key", out / f"{name}.key_secret"
    if (public.exists() or secret.exists()) and not args.force:
        sys.stderr.write(f"zshot keys: {public} or {secret} exists; --force to overwrite\n")
        return 2
    zmq.auth.create_certificates(str(out), name)
    os.chmod(secret, 0o600)
    print(
        f"public key: {public}  (server: give it to clients; client: put it in the server's "
        "allow-list directory)"
    )
    print(f"secret key: {secret}  (stays on this machine, mode 600)")
    return 0
