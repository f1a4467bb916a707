"""Settings from `NOVA_MCP_*` environment variables, overridden by command-line flags."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from nova_mcp_server.schema import DIMENSIONS, MODEL_ID

Backend = Literal["aws", "local"]
Transport = Literal["stdio", "sse", "streamable-http"]


def default_data_dir() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "nova-mcp-server"


def _split(value: object) -> object:
    if isinstance(value, str):
        return [part.strip() for part in value.replace(os.pathsep, ",").split(",") if part.strip()]
    return value


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="NOVA_MCP_", extra="ignore")

    backend: Backend | None = Field(default=None, description="aws or local; local unless AWS is configured")
    data_dir: Path = Field(default_factory=default_data_dir, description="local store, job table, model cache")

    # AWS
    region: str | None = Field(default=None, description="AWS region (else AWS_REGION / profile default)")
    profile: str | None = Field(default=None, description="AWS profile name (else AWS_PROFILE)")
    model_id: str = Field(default=MODEL_ID, description="Bedrock model id")
    dimension: int = Field(default=1024, description="Nova embedding dimension: 3072, 1024, 384 or 256")
    vector_bucket: str | None = Field(default=None, description="S3 Vectors bucket (created on first use)")
    staging_bucket: str | None = Field(default=None, description="S3 bucket for media and async outputs")
    staging_prefix: str = Field(default="nova-mcp/", description="key prefix inside the staging bucket")
    concurrency: int = Field(default=8, ge=1, le=256, description="concurrent embedding calls")
    bedrock_region: str | None = Field(
        default=None, description="region for Bedrock when it differs from the S3 Vectors region (else region)"
    )
    aws_call_budget_s: float = Field(
        default=300.0, gt=0, le=3600, description="total seconds one AWS call may take, retries included"
    )
    video_embedding_mode: Literal["combined", "separate"] = Field(
        default="combined",
        description="Nova video vectors: combined (one per segment) or separate (audio and picture, two per segment)",
    )

    # Local
    local_model: str | None = Field(
        default=None,
        description="local model family: jinaai/jina-clip-v1 (768-d, reads ~2,000-character chunks) or "
        "Qdrant/clip-ViT-B-32 (512-d, small); unset: the family of local_model_path, else jinaai/jina-clip-v1",
    )
    local_model_path: Path | None = Field(
        default=None, description="folder with text/ and vision/ ONNX models; skips any download"
    )
    whisper_model: str | None = Field(
        default=None,
        description="speech-to-text for local audio: a faster-whisper size (e.g. base) downloaded once into "
        "data_dir/models/whisper, or a model folder; default: tiny.en, downloaded the same way on first use",
    )

    # Indexing and search
    default_index: str = Field(default="default", description="index used when a call names none")
    segment_seconds: int = Field(default=10, ge=1, le=30, description="audio/video segment length")

    # Security
    allowed_roots: Annotated[list[Path], NoDecode] = Field(
        default_factory=list,
        description="folders files may be read from, besides the client's MCP roots; none by default (never the "
        "working directory)",
    )
    allowed_buckets: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="S3 buckets that may be read (empty: any)"
    )
    read_only: bool = Field(default=False, description="hide every tool that writes or deletes")
    auth_token: SecretStr | None = Field(default=None, description="bearer token required over HTTP")

    # Serving
    transport: Transport = "stdio"
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)
    log_level: str = "WARNING"
    allowed_hosts: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Host header values HTTP clients may send (e.g. mcp.example.com:*); required for a "
        "non-loopback bind",
    )
    allowed_origins: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="Origin header values browser clients may send over HTTP"
    )

    # Bounds on one call's work (each answered with a clear reason when reached)
    max_files_per_call: int = Field(default=2000, ge=1, description="files one index_content call takes")
    max_folder_depth: int = Field(default=32, ge=1, le=4096, description="folder levels walked below a named folder")
    max_file_bytes: int = Field(default=2 << 30, ge=1, description="largest file read, in bytes (2 GiB)")
    max_text_bytes: int = Field(default=32 << 20, ge=1, description="largest text file read, in bytes (32 MiB)")
    max_pdf_pages: int = Field(default=500, ge=1, description="pages of one PDF indexed")
    max_media_seconds: float = Field(default=4 * 3600, gt=0, description="longest audio or video indexed, seconds")

    rerank_model: str = Field(
        default="amazon.rerank-v1:0",
        description="Bedrock rerank model for semantic_search(rerank=true) on aws (or cohere.rerank-v3-5:0)",
    )

    # Answers and calls that fit the client
    answer_token_budget: int = Field(
        default=20_000, ge=1_000, description="tokens one tool answer may take (Claude Code caps at 25k)"
    )
    call_time_budget_s: float = Field(
        default=20.0, gt=0, description="seconds an index_content call runs before the rest becomes a background job"
    )

    _split_roots = field_validator("allowed_roots", "allowed_buckets", mode="before")(
        classmethod(lambda cls, v: _split(v))
    )
    # Hosts carry ports ("example.com:*"), so only commas separate them, never os.pathsep.
    _split_hosts = field_validator("allowed_hosts", "allowed_origins", mode="before")(
        classmethod(lambda cls, v: [p.strip() for p in v.split(",") if p.strip()] if isinstance(v, str) else v)
    )

    @field_validator("vector_bucket")
    @classmethod
    def _vector_bucket_name(cls, value: str | None) -> str | None:
        if value is None:
            return value
        from nova_mcp_server.stores.base import vector_bucket_problem  # numpy: only when there is a name

        problem = vector_bucket_problem(value)
        if problem:
            raise ValueError(problem)
        return value

    @field_validator("dimension")
    @classmethod
    def _nova_dimension(cls, value: int) -> int:
        if value not in DIMENSIONS:
            raise ValueError(f"dimension must be one of {', '.join(map(str, DIMENSIONS))}")
        return value

    @property
    def resolved_backend(self) -> Backend:
        if self.backend:
            return self.backend
        return "aws" if self.vector_bucket else "local"
