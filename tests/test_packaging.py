"""The `.mcpb` bundle and the MCP Registry's `server.json` agree with pyproject.toml, and the bundle really serves.

- the manifest's name, version and Python range are pyproject's (`check_manifest`), every `${user_config.x}` it
  uses is declared, and every environment variable it sets is a real setting;
- `server.json` names the pyproject distribution and version (the package is launched with `uvx`), its name is
  the README's `mcp-name:` line (the registry's proof of PyPI ownership), and it keeps the registry's rules;
- the built bundle, unzipped, started as the manifest's `mcp_config` says (with this venv's Python in place of
  `uv run`, which tests cannot use offline), lists the manifest's tools and indexes a file of the allowed folder.
The official `mcpb` CLI validates the same bundle in `.ci/run`.
"""

from __future__ import annotations

import importlib.util
import json
import re
import sys
import tomllib
import zipfile
from pathlib import Path
from typing import Any

import pytest
from mcp import Client, StdioServerParameters

from nova_mcp_server.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
MANIFEST = json.loads((ROOT / "packaging" / "mcpb" / "manifest.json").read_text())
SERVER_JSON = json.loads((ROOT / "packaging" / "server.json").read_text())


def load(path: Path, name: str) -> Any:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


build_mcpb = load(ROOT / "packaging" / "build_mcpb.py", "build_mcpb")
bundle_main = load(ROOT / "packaging" / "mcpb" / "server" / "main.py", "bundle_main")


def is_setting(env_name: str) -> bool:
    """NOVA_MCP_X must be a Settings field; AWS_* are boto3's own; nothing else is configured by env."""
    if env_name.startswith("NOVA_MCP_"):
        return env_name.removeprefix("NOVA_MCP_").lower() in Settings.model_fields
    return env_name.startswith("AWS_")


def test_manifest_agrees_with_pyproject() -> None:
    assert build_mcpb.check_manifest(MANIFEST, PROJECT) == []
    assert MANIFEST["manifest_version"] == "0.4" and MANIFEST["server"]["type"] == "uv"
    assert MANIFEST["compatibility"]["runtimes"]["python"] == PROJECT["requires-python"].replace(",", " ")
    assert MANIFEST["privacy_policies"] and all(p.startswith("https://") for p in MANIFEST["privacy_policies"])


def test_check_manifest_names_each_disagreement() -> None:
    stale = {**MANIFEST, "version": "0.0.9", "compatibility": {"runtimes": {"python": ">=3.10"}}}
    problems = build_mcpb.check_manifest(stale, PROJECT)
    assert len(problems) == 2 and "version '0.0.9'" in problems[0] and "runtimes.python" in problems[1]
    assert build_mcpb.python_range(">=3.11, <3.15") == ">=3.11 <3.15"


def test_manifest_uses_only_declared_user_config_and_real_settings() -> None:
    config = MANIFEST["server"]["mcp_config"]
    used = set(re.findall(r"\$\{user_config\.(\w+)\}", json.dumps(config)))
    assert used == set(MANIFEST["user_config"]), "every user_config field is used, and only declared ones"
    assert all(is_setting(name) for name in config["env"]), config["env"]
    for key in ("backend", "aws_profile", "aws_region", "vector_bucket", "staging_bucket", "data_dir"):
        assert key in MANIFEST["user_config"], key
    folders = MANIFEST["user_config"]["allowed_directories"]
    assert folders["type"] == "directory" and folders["multiple"] and folders["required"]


def test_bundle_entry_drops_unset_fields_and_joins_folders() -> None:
    env = {"NOVA_MCP_BACKEND": "", "AWS_PROFILE": "${user_config.aws_profile}", "AWS_REGION": "eu-west-1", "HOME": ""}
    bundle_main.prepare(env, ["/a", "", "/b c"])
    assert env == {"AWS_REGION": "eu-west-1", "HOME": "", "NOVA_MCP_ALLOWED_ROOTS": f"/a{bundle_main.os.pathsep}/b c"}
    untouched = {"NOVA_MCP_ALLOWED_ROOTS": "/x"}
    bundle_main.prepare(untouched, ["${user_config.allowed_directories}"])
    assert untouched == {"NOVA_MCP_ALLOWED_ROOTS": "/x"}


def test_server_json_matches_pyproject_and_readme() -> None:
    readme = (ROOT / "README.md").read_text()
    names = re.findall(r"mcp-name:\s*(\S+)", readme)
    assert names == [SERVER_JSON["name"]], "the README carries exactly one mcp-name line, server.json's name"
    assert SERVER_JSON["$schema"] == "https://static.modelcontextprotocol.io/schemas/2025-12-11/server.schema.json"
    assert re.fullmatch(r"[a-zA-Z0-9.-]+/[a-zA-Z0-9._-]+", SERVER_JSON["name"])
    assert 1 <= len(SERVER_JSON["description"]) <= 100
    assert SERVER_JSON["version"] == PROJECT["version"]
    [package] = SERVER_JSON["packages"]
    assert (package["registryType"], package["identifier"], package["version"]) == (
        "pypi",
        PROJECT["name"],
        PROJECT["version"],
    )
    assert package["runtimeHint"] == "uvx" and package["transport"] == {"type": "stdio"}
    assert package["identifier"] in PROJECT["scripts"], "uvx runs the script named like the package"


def test_server_json_environment_variables() -> None:
    [package] = SERVER_JSON["packages"]
    variables = package["environmentVariables"]
    assert len({v["name"] for v in variables}) == len(variables)
    for var in variables:
        assert is_setting(var["name"]), var["name"]
        assert isinstance(var["isRequired"], bool) and isinstance(var["isSecret"], bool), var["name"]
        assert var["description"], var["name"]
        assert var["isSecret"] == ("SECRET" in var["name"] or "KEY" in var["name"]), var["name"]
    required = {v["name"] for v in variables if v["isRequired"]}
    assert required == {"NOVA_MCP_ALLOWED_ROOTS"}
    backend = next(v for v in variables if v["name"] == "NOVA_MCP_BACKEND")
    assert set(backend["choices"]) == {"aws", "local"}


def test_build_is_deterministic_and_carries_the_package(tmp_path: Path) -> None:
    first = build_mcpb.build(tmp_path / "a")
    second = build_mcpb.build(tmp_path / "b")
    assert first.name == f"{PROJECT['name']}-{PROJECT['version']}.mcpb"
    assert first.read_bytes() == second.read_bytes()
    with zipfile.ZipFile(first) as zf:
        names = set(zf.namelist())
        bundled = tomllib.loads(zf.read("pyproject.toml").decode())
    assert {"manifest.json", "pyproject.toml", "server/main.py", "nova_mcp_server/cli.py"} <= names
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc")]
    assert bundled["project"]["dependencies"] == PROJECT["dependencies"]
    assert bundled["project"]["requires-python"] == PROJECT["requires-python"]
    assert bundled["tool"]["uv"]["package"] is False


def resolve(value: str, dirname: Path, user: dict[str, Any]) -> list[str]:
    """Expand one manifest string as the host does: a `multiple` field becomes one argument per value."""
    match = re.fullmatch(r"\$\{user_config\.(\w+)\}", value)
    if match and isinstance(user.get(match.group(1)), list):
        return [str(v) for v in user[match.group(1)]]
    value = value.replace("${__dirname}", str(dirname))
    return [re.sub(r"\$\{user_config\.(\w+)\}", lambda m: str(user.get(m.group(1), "")), value)]


@pytest.mark.anyio
async def test_built_bundle_serves_as_the_manifest_says(tmp_path: Path, tiny_model: Path) -> None:
    with zipfile.ZipFile(build_mcpb.build(tmp_path / "dist")) as zf:
        zf.extractall(tmp_path / "bundle")
    bundle = tmp_path / "bundle"
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "car.txt").write_text("a red car on the road")
    user = {"allowed_directories": [docs], "backend": "local", "data_dir": tmp_path / "data"}
    config = MANIFEST["server"]["mcp_config"]
    args = [a for arg in config["args"] for a in resolve(arg, bundle, user)]
    assert config["command"] == "uv" and args[:4] == ["run", "--directory", str(bundle), "server/main.py"]
    env = {k: r for k, v in config["env"].items() for r in resolve(v, bundle, user)}
    env.update(NOVA_MCP_LOCAL_MODEL_PATH=str(tiny_model), HF_HUB_OFFLINE="1")  # no download in tests
    params = StdioServerParameters(command=sys.executable, args=[str(bundle / args[3]), *args[4:]], env=env, cwd=bundle)
    async with Client(params, mode="legacy") as client:
        tools = {t.name for t in (await client.list_tools()).tools}
        indexed = await client.call_tool("index_content", {"sources": [str(docs)], "index": "bundle"})
        outside = await client.call_tool("index_content", {"sources": [str(tmp_path / "data")], "index": "bundle"})
    listed = {t["name"] for t in MANIFEST["tools"]}
    assert tools == listed, f"a tool was added or removed: update packaging/mcpb/manifest.json tools ({tools ^ listed})"
    assert not indexed.is_error and indexed.structured_content["indexed_sources"] == 1, indexed.content[0].text
    assert outside.is_error or outside.structured_content["failed"], "the data folder is not an allowed folder"
    assert (tmp_path / "data").is_dir()  # the data folder from user_config was used
