"""One entry point: `nova-multimodal-mcp [serve]` runs the MCP server; `index`, `search`, `jobs`, `indexes` are for people.

Flags override `NOVA_MCP_*` environment variables. In stdio mode nothing but protocol goes to stdout:
logs go to stderr.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import anyio
from pydantic import ValidationError

from nova_mcp_server import __version__
from nova_mcp_server.errors import NovaError

COMMANDS = ("serve", "index", "search", "jobs", "indexes", "doctor", "download-model")
SETUP_COMMANDS = ("doctor", "download-model")  # need settings only, not the running core


def _common(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("backend (flags override NOVA_MCP_* environment variables)")
    g.add_argument("--backend", choices=["aws", "local"], help="default: aws if a vector bucket is set, else local")
    g.add_argument("--data-dir", type=Path, help="local store, job table and model cache")
    g.add_argument("--region", help="AWS region")
    g.add_argument("--profile", help="AWS profile")
    g.add_argument("--model-id", help="Bedrock model id")
    g.add_argument("--dimension", type=int, choices=[3072, 1024, 384, 256], help="Nova embedding dimension")
    g.add_argument("--vector-bucket", help="S3 Vectors bucket")
    g.add_argument("--staging-bucket", help="S3 bucket for media uploads and async outputs")
    g.add_argument("--concurrency", type=int, help="concurrent embedding calls")
    g.add_argument("--local-model", help="local model family: jinaai/jina-clip-v1 (default) or Qdrant/clip-ViT-B-32")
    g.add_argument("--local-model-path", type=Path, help="folder holding a copy of the local family's ONNX repository")
    g.add_argument("--whisper-model", help="speech-to-text model for local audio (size name or folder)")
    g.add_argument("--allowed-root", action="append", type=Path, dest="allowed_roots", help="repeatable")
    g.add_argument("--allowed-bucket", action="append", dest="allowed_buckets", help="repeatable")
    g.add_argument("--default-index", help="index used when a call names none")
    g.add_argument("--log-level", help="DEBUG, INFO, WARNING (default), ERROR")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="nova-multimodal-mcp", description="Multimodal retrieval MCP server")
    parser.add_argument("--version", action="version", version=f"nova-multimodal-mcp {__version__}")
    sub = parser.add_subparsers(dest="command")

    serve = sub.add_parser("serve", help="run the MCP server (the default command)")
    _common(serve)
    serve.add_argument("--transport", choices=["stdio", "sse", "streamable-http"])
    serve.add_argument("--host", help="HTTP bind address (default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="HTTP port (default 8000)")
    serve.add_argument(
        "--allowed-host", action="append", dest="allowed_hosts", help="Host header to accept; repeatable"
    )
    serve.add_argument("--allowed-origin", action="append", dest="allowed_origins", help="Origin to accept; repeatable")
    serve.add_argument("--read-only", action="store_true", default=None, help="hide tools that write or delete")

    index = sub.add_parser("index", help="index files, folders or s3:// URIs")
    _common(index)
    index.add_argument("paths", nargs="+")
    index.add_argument("--index", dest="index_name")
    index.add_argument("--include", action="append", default=[])
    index.add_argument("--exclude", action="append", default=[])
    index.add_argument("--metadata", type=json.loads, help="JSON object added to every vector")
    index.add_argument("--json", action="store_true", help="print JSON for scripts")
    index.add_argument(
        "--dry-run", action="store_true", help="count sources and segments and estimate the cost; write nothing"
    )

    search = sub.add_parser("search", help="search an index by text or image")
    _common(search)
    search.add_argument("query", nargs="?")
    search.add_argument("--image", help="image file or s3:// URI to search with")
    search.add_argument("--index", dest="index_name")
    search.add_argument("--top-k", type=int, default=5)
    search.add_argument("--filter", type=json.loads, help="S3 Vectors filter as JSON")
    search.add_argument("--modality", action="append")
    search.add_argument("--json", action="store_true")

    jobs = sub.add_parser("jobs", help="show jobs (and move them forward)")
    _common(jobs)
    jobs.add_argument("job_id", nargs="?")
    jobs.add_argument("--json", action="store_true")

    indexes = sub.add_parser("indexes", help="list indexes")
    _common(indexes)
    indexes.add_argument("--json", action="store_true")

    doctor = sub.add_parser(
        "doctor", help="check credentials, region, model access, buckets, index, IAM, local model, allowed folders"
    )
    _common(doctor)
    doctor.add_argument("--json", action="store_true")

    download = sub.add_parser("download-model", help="download the local model now (progress bar on stderr)")
    _common(download)
    download.add_argument("--json", action="store_true")
    download.add_argument(
        "--with-speech", action="store_true", help="also the speech-to-text model for local audio (audio extra)"
    )
    return parser


def settings_from(args: argparse.Namespace) -> Any:
    from nova_mcp_server.settings import Settings

    names = set(Settings.model_fields)
    overrides = {k: v for k, v in vars(args).items() if k in names and v is not None}
    return Settings(**overrides)


def setting_problems(exc: ValidationError, args: argparse.Namespace) -> str:
    """Each refused setting named as the user wrote it (the flag, or else the NOVA_MCP_ variable) with the rule."""
    problems = []
    for error in exc.errors(include_url=False):
        field = str(error["loc"][0]) if error["loc"] else ""
        flag = "--" + field.replace("_", "-")
        where = f"NOVA_MCP_{field.upper()}" + (f" (or {flag})" if field in vars(args) else "")
        if getattr(args, field, None) is not None:
            where = f"{flag} (or NOVA_MCP_{field.upper()})"
        rule = str(error["msg"]).removeprefix("Value error, ").rstrip(".")
        if rule.startswith("Input should be "):
            rule = "must be " + rule.removeprefix("Input should be ").replace("a valid integer", "an integer")
        value = error.get("input")
        got = f" (got {value!r})" if isinstance(value, str | int | float) and rule.startswith("must") else ""
        problems.append(f"{where}: {rule}{got}" if field else rule)
    return "; ".join(problems) + ". Fix it in the server's configuration (env or args) and start it again."


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or (argv[0] not in COMMANDS and argv[0] not in ("-h", "--help", "--version")):
        argv = ["serve", *argv]
    args = build_parser().parse_args(argv)
    try:
        settings = settings_from(args)
    except ValidationError as exc:
        print(f"nova-multimodal-mcp: invalid setting: {setting_problems(exc, args)}", file=sys.stderr)
        return 2
    logging.basicConfig(
        stream=sys.stderr, level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    from nova_mcp_server.redact import install_log_scrubber  # no keys, signatures or presigned URLs in logs

    install_log_scrubber()
    if args.command in SETUP_COMMANDS:
        from nova_mcp_server import setup_commands

        return setup_commands.run(
            args.command, settings, json_output=args.json, with_speech=getattr(args, "with_speech", False)
        )
    try:
        if args.command == "serve" and settings.transport != "stdio":
            from nova_mcp_server.server.http import check_http_settings

            check_http_settings(settings)  # before anything loads: refuse an exposed bind at once
        if args.command == "serve":
            return serve(settings)
        from nova_mcp_server import console
        from nova_mcp_server.app import build_app

        return anyio.run(console.run_command, build_app(settings), args)
    except NovaError as exc:
        print(f"nova-multimodal-mcp: {exc.text}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


def serve(settings: Any) -> int:
    """Run the MCP server; the App is built in the background once it runs (`server.handle`), so the
    client's `initialize` is answered without waiting for the services to import."""
    from nova_mcp_server.server import build_server
    from nova_mcp_server.server.handle import AppHandle

    handle = AppHandle(settings)
    mcp = build_server(handle)
    if settings.transport == "stdio":
        from nova_mcp_server.stdio import run_stdio

        handle.build_after_handshake = True  # the client waits for `initialize`: build once it has it
        # like mcp.run(), but unreadable lines get a JSON-RPC error, not silence
        anyio.run(run_stdio, mcp, handle.kick)
        return 0
    from nova_mcp_server.server.http import serve_http

    serve_http(mcp, settings)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
