"""The host <-> worker protocol messages for the conformance suite, compiled from function_rpc.proto on first use.

Compiled into a per-content cache directory (not committed: generated code would pin a protobuf gencode version),
then imported as `function_rpc_pb2` / `function_rpc_pb2_grpc`. The worker process imports them the same way.
"""
from __future__ import annotations

import hashlib
import importlib
import sys
import tempfile
from pathlib import Path
from types import ModuleType

PROTO = Path(__file__).with_name("function_rpc.proto")


def compiled_dir() -> Path:
    """Directory holding the generated modules for the current .proto (compiled once per content)."""
    digest = hashlib.sha256(PROTO.read_bytes()).hexdigest()[:16]
    out = Path(tempfile.gettempdir()) / f"gw-conformance-protos-{digest}"
    if not (out / "function_rpc_pb2_grpc.py").exists():
        from grpc_tools import protoc  # dev dependency (requirements-dev.txt)

        tmp = Path(tempfile.mkdtemp(prefix="gw-protos-"))
        include = Path(protoc.__file__).parent / "_proto"  # google/protobuf/*.proto shipped with grpcio-tools
        rc = protoc.main(["protoc", f"-I{PROTO.parent}", f"-I{include}", f"--python_out={tmp}",
                          f"--grpc_python_out={tmp}", str(PROTO)])
        if rc != 0:
            raise RuntimeError(f"protoc failed on {PROTO} (exit {rc})")
        try:
            tmp.rename(out)  # atomic: a concurrent run either wins or finds the finished directory
        except OSError:
            if not (out / "function_rpc_pb2_grpc.py").exists():
                raise
    return out


def load() -> tuple[ModuleType, ModuleType]:
    """→ (messages module, gRPC stubs module)."""
    path = str(compiled_dir())
    if path not in sys.path:
        sys.path.insert(0, path)
    return importlib.import_module("function_rpc_pb2"), importlib.import_module("function_rpc_pb2_grpc")
