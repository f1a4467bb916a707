"""The embedded local default: an open CLIP-style model (text + image, one space) run by fastembed on ONNX.

Why this shape:
- Lazy. Constructing the embedder imports neither fastembed nor onnxruntime and touches no model file, so
  the MCP server answers ``initialize`` and ``tools/list`` at once. The first ``embed`` loads both towers in
  a worker thread, once, however many calls arrive together.
- Never hangs offline. A cached model loads from the cache without any network call. Otherwise, unless
  ``HF_HUB_OFFLINE`` is set, a single bounded request asks the hub whether it is reachable before the
  download (fastembed would otherwise retry for ~40 s); when it is not, ``ModelUnavailable`` says how to
  get the model. ``model_path`` (a folder in the family's layout, see `families`) never touches the network.
- Answers the Nova request contract: text and image requests; audio, video and S3 sources are refused
  with a message saying what the local backend does instead. The families have one space, so the purpose
  is accepted and ignored; each has one dimension, which a request may name but not change.
- Reads a text up to the model's token window (not a character guess) and says where it cut
  (``truncated_char_length``); `measure_texts` tells a caller the token count before embedding.
"""

from __future__ import annotations

import inspect
import logging
import os
import threading
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import anyio
import anyio.from_thread
import anyio.to_thread
import numpy as np
from anyio.lowlevel import RunVar

from nova_mcp_server.embedders.base import EmbedderInfo
from nova_mcp_server.embedders.batching import (
    IMAGE_BATCH,
    MAX_TEXT_BATCH,
    Coalescer,
    decode_image,
    prefetched,
    token_batches,
)
from nova_mcp_server.embedders.families import (
    DEFAULT_FAMILY,
    FAMILIES,
    MODEL_PATH_CONFIG,
    Family,
    choose_family,
    family_for_folder,
    family_named,
    read_model_path_config,
)
from nova_mcp_server.errors import DimensionMismatch, InvalidInput, ModelUnavailable, NovaError
from nova_mcp_server.schema import EmbeddingItem, EmbeddingType, SingleEmbeddingRequest, TruncationMode

if TYPE_CHECKING:
    from tokenizers import Tokenizer

__all__ = ["DEFAULT_FAMILY", "FAMILIES", "Family", "LocalEmbedder", "TextFit", "choose_family"]

log = logging.getLogger(__name__)

OnLoading = Callable[[str], Awaitable[None] | None]


@dataclass(frozen=True)
class TextFit:
    """How a text fits the model's window: what a caller reports when a query is cut."""

    tokens: int  # the text's tokens, special tokens excluded
    max_tokens: int  # the most tokens of text the model reads (window minus special tokens)
    truncated: bool
    kept_chars: int  # characters embedded with truncationMode END: len(text) when not truncated


@dataclass
class _Loaded:
    text: Any  # fastembed.TextEmbedding
    vision: Any  # fastembed.ImageEmbedding
    counter: Tokenizer | None  # the text tokenizer without truncation, to measure and cut long texts
    content_tokens: int  # tokens left for the text once the special tokens are added


class LocalEmbedder:
    """Text + image embeddings on this machine; implements the `Embedder` protocol."""

    def __init__(
        self,
        model: str | None = None,
        *,
        model_path: Path | str | None = None,
        cache_dir: Path | str | None = None,
        on_loading: OnLoading | None = None,
        threads: int | None = None,
        max_concurrency: int = 1,
        hub_timeout: float = 10.0,
    ) -> None:
        """Cheap: validates names and reads at most ``model_path/nova-mcp.json``; loads nothing.

        ``model``: a family from `families.FAMILIES` (None: the one ``model_path`` holds, else the default,
        jinaai/jina-clip-v1). ``model_path``: a folder in the family's layout, loaded with no download.
        ``cache_dir``: where weights are downloaded on first use. ``on_loading(message)``: called (sync or
        async, in the caller's event loop) when the first call starts loading and again before a download, so
        the caller can tell the user. ``threads``: onnxruntime threads (None: all cores). ``max_concurrency``:
        inference calls at once (ONNX already uses every core, so 1-2). ``hub_timeout``: seconds the
        reachability check may take.
        """
        self.model_path = Path(model_path).expanduser() if model_path is not None else None
        if model:
            family = family_named(model)
        elif self.model_path is not None:
            family = family_for_folder(self.model_path)
        else:
            family = family_named(DEFAULT_FAMILY)
        self.family = family
        self.cache_dir = Path(cache_dir).expanduser() if cache_dir is not None else None
        self.on_loading = on_loading
        self.threads = threads
        self.hub_timeout = hub_timeout
        self._max_concurrency = max_concurrency
        self._coalescer: RunVar[Coalescer[_Job, dict[int, EmbeddingItem]]] = RunVar(f"nova_local_embedder_{id(self)}")

        model_id, dimension, max_chars = family.name, family.dimension, family.max_text_chars
        if self.model_path is not None:
            model_id, dimension, max_chars = self._read_model_path_config(model_id, dimension, max_chars)
        self.info = EmbedderInfo(
            provider="local",
            model=model_id,
            dimensions=[dimension],
            default_dimension=dimension,
            modalities=["text", "image"],
            max_text_chars=max_chars,
            max_sync_media_seconds=None,
            supports_async=False,
        )

        self._lock = threading.Lock()
        self._loaded: _Loaded | None = None
        self._state = "not loaded yet"

    @classmethod
    def from_settings(cls, settings: Any, on_loading: OnLoading | None = None) -> LocalEmbedder:
        """Build from `Settings`: local_model, local_model_path, and a model cache under data_dir."""
        return cls(
            model=settings.local_model,
            model_path=settings.local_model_path,
            cache_dir=Path(settings.data_dir) / "models",
            on_loading=on_loading,
        )

    # ---- state -------------------------------------------------------------------------------------------

    @property
    def loaded(self) -> bool:
        return self._loaded is not None

    def status(self) -> str:
        """'not loaded yet', 'loading' (or 'loading: downloading ...'), 'ready', or 'error: <what to do>'."""
        return self._state

    # ---- embedding ---------------------------------------------------------------------------------------

    async def embed(self, requests: Sequence[SingleEmbeddingRequest]) -> list[list[EmbeddingItem]]:
        """Embed text and image requests, batched per modality; results keep the input order."""
        texts: list[tuple[int, str, TruncationMode]] = []
        images: list[tuple[int, bytes]] = []
        for i, request in enumerate(requests):
            kind, payload, mode = self._check(f"Request {i}" if len(requests) > 1 else "The request", request)
            if kind == "text":
                texts.append((i, payload, mode))
            else:
                images.append((i, payload))
        if not requests:
            return []
        if self._loaded is None:
            await anyio.to_thread.run_sync(self._load_once)
        items = await self._runs().submit((texts, images))
        return [[items[i]] for i in range(len(requests))]

    def _check(self, where: str, request: SingleEmbeddingRequest) -> tuple[str, Any, TruncationMode]:
        """Refuse what the local model cannot do before anything is loaded."""
        params = request.params
        if "embedding_dimension" in params.model_fields_set and params.embedding_dimension != self.dimension:
            raise DimensionMismatch(
                f"{where} asks for dimension {params.embedding_dimension}, but the local model "
                f"{self.info.model} produces {self.dimension}-dimensional vectors only.",
                f"Use dimension {self.dimension} (or leave it out) with the local backend.",
            )
        if params.audio is not None or params.video is not None:
            raise InvalidInput(
                f"{where} is {params.modality}; the local backend embeds text and images only.",
                "Index video files with index_content (they are embedded as key frames), and audio with the "
                "audio extra installed (transcribed to text); or use the aws backend (Nova) for native audio "
                "and video vectors.",
            )
        if params.text is not None:
            if params.text.value is None:
                raise InvalidInput(
                    f"{where} reads text from S3; the local backend embeds inline text only.",
                    "Pass the text in text.value, or use the aws backend for S3 sources.",
                )
            return "text", params.text.value, params.text.truncation_mode
        image = params.image
        assert image is not None  # the schema guarantees exactly one modality
        if image.source.data is None:
            raise InvalidInput(
                f"{where} reads an image from S3; the local backend embeds inline image bytes only.",
                "Send the image as base64 'bytes', or use the aws backend for S3 sources.",
            )
        return "image", image.source.raw_bytes(), TruncationMode.END

    @property
    def dimension(self) -> int:
        return self.info.default_dimension

    def _runs(self) -> Coalescer[_Job, dict[int, EmbeddingItem]]:
        """The model runs of this event loop (anyio primitives belong to the loop that made them): at most
        ``max_concurrency`` at once, and text-only calls that wait for one share the next run."""
        try:
            return self._coalescer.get()
        except LookupError:
            runs = Coalescer(self._embed_jobs, max_items=MAX_TEXT_BATCH, size=_job_size, runners=self._max_concurrency)
            self._coalescer.set(runs)
            return runs

    def _embed_jobs(self, jobs: list[_Job]) -> list[dict[int, EmbeddingItem] | BaseException]:
        """Several calls' texts in one model run; if that run fails, each call alone, so each gets its own
        error (with its own request numbers) and the others their vectors."""
        if len(jobs) == 1:
            try:
                return [self._embed_blocking(*jobs[0])]
            except Exception as exc:
                return [exc]
        merged: list[tuple[int, str, TruncationMode]] = []
        owners: list[tuple[int, int]] = []  # (call, request number in that call) of each merged text
        for n, (texts, _images) in enumerate(jobs):
            for i, text, mode in texts:
                owners.append((n, i))
                merged.append((len(merged), text, mode))
        try:
            items = self._embed_blocking(merged, [])
        except Exception:
            return [self._embed_jobs([job])[0] for job in jobs]
        out: list[dict[int, EmbeddingItem] | BaseException] = [{} for _ in jobs]
        for k, (n, i) in enumerate(owners):
            cast(dict[int, EmbeddingItem], out[n])[i] = items[k]
        return out

    def _embed_blocking(
        self, texts: list[tuple[int, str, TruncationMode]], images: list[tuple[int, bytes]]
    ) -> dict[int, EmbeddingItem]:
        loaded = self._loaded
        assert loaded is not None
        out: dict[int, EmbeddingItem] = {}
        if texts:
            prepared = [self._fit_text(loaded, i, text, mode) for i, text, mode in texts]
            for batch in token_batches([tokens for _, _, tokens in prepared]):
                vectors = self._run(loaded.text, [prepared[j][0] for j in batch], batch_size=len(batch))
                for j, vector in zip(batch, vectors, strict=True):
                    out[texts[j][0]] = EmbeddingItem(
                        embedding_type=EmbeddingType.TEXT, embedding=vector, truncated_char_length=prepared[j][1]
                    )
        chunks = [images[start : start + IMAGE_BATCH] for start in range(0, len(images), IMAGE_BATCH)]
        # the next chunk decodes in a helper thread while the model runs this one; one chunk in memory ahead
        for chunk, pictures in prefetched(chunks, lambda c: (c, [decode_image(i, raw) for i, raw in c])):
            vectors = self._run(loaded.vision, pictures, batch_size=len(pictures))
            for (i, _), vector in zip(chunk, vectors, strict=True):
                out[i] = EmbeddingItem(embedding_type=EmbeddingType.IMAGE, embedding=vector)
        return out

    async def measure_texts(self, texts: Sequence[str]) -> list[TextFit]:
        """Token counts of ``texts`` against the model's window (loads the model on first use).

        For reporting: `embed` with truncationMode END embeds exactly ``text[:kept_chars]`` and reports that
        length as ``truncated_char_length`` when it cuts.
        """
        if self._loaded is None:
            await anyio.to_thread.run_sync(self._load_once)
        loaded = self._loaded
        assert loaded is not None
        return [self._measure(loaded, text) for text in texts]

    def _measure(self, loaded: _Loaded, text: str) -> TextFit:
        if loaded.counter is None:  # fastembed hid its tokenizer: it still truncates, we cannot say where
            return TextFit(tokens=0, max_tokens=0, truncated=False, kept_chars=len(text))
        encoding = loaded.counter.encode(text, add_special_tokens=False)
        n, budget = len(encoding.ids), loaded.content_tokens
        kept = len(text) if n <= budget else encoding.offsets[budget - 1][1]
        return TextFit(tokens=n, max_tokens=budget, truncated=n > budget, kept_chars=kept)

    def _run(self, model: Any, inputs: list[Any], batch_size: int) -> list[list[float]]:
        try:
            matrix = np.asarray(list(model.embed(inputs, batch_size=batch_size)), dtype=np.float32)
        except NovaError:
            raise
        except Exception as exc:  # onnxruntime / preprocessing failures are ours, but say what happened
            raise ModelUnavailable(f"The local model failed to embed: {exc}") from exc
        matrix = matrix.reshape(len(inputs), -1)
        if matrix.shape[1] != self.dimension:
            raise ModelUnavailable(
                f"The local model produced {matrix.shape[1]}-dimensional vectors, but {self.info.model} is "
                f"configured for {self.dimension}.",
                f"Fix 'dimension' in {MODEL_PATH_CONFIG} of the model folder." if self.model_path else None,
            )
        norms = np.linalg.norm(matrix, axis=1, keepdims=True)
        return (matrix / np.maximum(norms, 1e-12)).tolist()

    def _fit_text(self, loaded: _Loaded, i: int, text: str, mode: TruncationMode) -> tuple[str, int | None, int]:
        """Cut text the model cannot read, per the request's truncation mode: (text, cut position, tokens)."""
        if loaded.counter is None:
            return text, None, max(1, len(text) // 4)  # fastembed truncates; ~4 chars a token for batching
        encoding = loaded.counter.encode(text, add_special_tokens=False)
        n, budget = len(encoding.ids), loaded.content_tokens
        if n <= budget:
            return text, None, n
        if mode == TruncationMode.NONE:
            raise InvalidInput(
                f"Request {i}: the text is {n} tokens; the local model {self.info.model} reads at most {budget} "
                f"(about {self.info.max_text_chars} characters are indexed per chunk) and truncationMode is NONE.",
                "Split the text into shorter chunks, or use truncationMode END or START.",
            )
        if mode == TruncationMode.START:  # keep the end; report where the kept text begins
            cut = encoding.offsets[n - budget][0]
            return text[cut:], cut, budget
        cut = encoding.offsets[budget - 1][1]
        return text[:cut], cut, budget

    # ---- loading -----------------------------------------------------------------------------------------

    def _load_once(self) -> None:
        """Runs in a worker thread; the lock makes concurrent first calls share one load."""
        with self._lock:
            if self._loaded is not None:
                return
            self._state = "loading"
            self._notify(f"Loading the local model {self.info.model} (first use)...")
            try:
                self._loaded = self._load()
            except NovaError as exc:
                self._state = f"error: {exc.text}"
                raise
            except Exception as exc:  # anything fastembed/onnxruntime raises while loading
                error = ModelUnavailable(f"The local model {self.info.model} could not be loaded: {exc}")
                self._state = f"error: {error.text}"
                raise error from exc
            self._state = "ready"

    def _load(self) -> _Loaded:
        from fastembed import ImageEmbedding, TextEmbedding  # heavy (onnxruntime): only on first use

        common: dict[str, Any] = {"threads": self.threads}
        if self.model_path is not None:
            self._check_model_path()
            text_dir, vision_dir = self.model_path / self.family.text_dir, self.model_path / self.family.vision_dir
            text = TextEmbedding(self.family.text, specific_model_path=str(text_dir), **common)
            vision = ImageEmbedding(self.family.vision, specific_model_path=str(vision_dir), **common)
            return self._finish(text, vision)

        cache = str(self.cache_dir) if self.cache_dir is not None else None
        try:
            with _quiet_fastembed():
                text = TextEmbedding(self.family.text, cache_dir=cache, local_files_only=True, **common)
                vision = ImageEmbedding(self.family.vision, cache_dir=cache, local_files_only=True, **common)
        except Exception as exc:
            log.info("local model not in the cache (%s); trying a download", exc)
        else:
            return self._finish(text, vision)  # a cached model that is broken fails here, no download

        if _truthy(os.environ.get("HF_HUB_OFFLINE")):
            raise self._unavailable("HF_HUB_OFFLINE is set, so it cannot be downloaded")
        reason = self._hub_unreachable()
        if reason:
            raise self._unavailable(f"the model hub is not reachable ({reason})")

        where = cache or "fastembed's default cache"
        self._state = f"loading: downloading {self.info.model} (~{self.family.download_gb} GB) into {where}"
        self._notify(
            f"Downloading the local model {self.info.model} (~{self.family.download_gb} GB, once) into {where}..."
        )
        try:
            text = TextEmbedding(self.family.text, cache_dir=cache, **common)
            vision = ImageEmbedding(self.family.vision, cache_dir=cache, **common)
        except Exception as exc:
            raise self._unavailable(f"the download failed ({exc})") from exc
        return self._finish(text, vision)

    def _finish(self, text: Any, vision: Any) -> _Loaded:
        """Prepare the token counter; check the text tower's real dimension once."""
        counter, content_tokens = _token_counter(text, self.family.max_tokens)
        loaded = _Loaded(text=text, vision=vision, counter=counter, content_tokens=content_tokens)
        self._run(text, ["dimension check"], batch_size=1)  # raises ModelUnavailable on a mismatch
        return loaded

    def _check_model_path(self) -> None:
        assert self.model_path is not None
        missing = self.family.missing_files(self.model_path)
        if missing:
            raise ModelUnavailable(
                f"The local model folder {self.model_path} ({self.family.name} layout) is missing "
                f"{', '.join(missing)}.",
                f"It needs {self.family.describe_layout()}; fix the folder or unset NOVA_MCP_LOCAL_MODEL_PATH / "
                "--local-model-path.",
            )

    def _read_model_path_config(self, model_id: str, dimension: int, max_chars: int) -> tuple[str, int, int]:
        assert self.model_path is not None
        data = read_model_path_config(self.model_path)
        try:
            return (
                str(data.get("model", model_id)),
                int(data.get("dimension", dimension)),  # type: ignore[call-overload]
                int(data.get("max_text_chars", max_chars)),  # type: ignore[call-overload]
            )
        except (ValueError, TypeError) as exc:
            raise InvalidInput(
                f"{self.model_path / MODEL_PATH_CONFIG} is not valid: {exc}.",
                '"dimension" and "max_text_chars" are whole numbers.',
            ) from exc

    def _unavailable(self, why: str) -> ModelUnavailable:
        where = self.cache_dir or "fastembed's cache"
        return ModelUnavailable(
            f"The local model {self.info.model} is not downloaded yet and {why}.",
            f"Run once with internet access to download it (~{self.family.download_gb} GB) into {where}, or set "
            "NOVA_MCP_LOCAL_MODEL_PATH / --local-model-path to a folder with "
            f"{self.family.describe_layout()}; or choose another family with NOVA_MCP_LOCAL_MODEL "
            f"({', '.join(f.name for f in FAMILIES.values())}).",
        )

    def _hub_unreachable(self) -> str | None:
        """One bounded request to the hub, in a daemon thread so even a stuck DNS lookup cannot hang us."""
        result: list[str | None] = []

        def probe() -> None:
            try:
                from huggingface_hub import HfApi

                HfApi(endpoint=os.environ.get("HF_ENDPOINT") or None).model_info(
                    self.family.text, timeout=self.hub_timeout
                )
                result.append(None)
            except Exception as exc:
                result.append((str(exc).strip() or "no answer")[:300])

        thread = threading.Thread(target=probe, name="nova-hub-probe", daemon=True)
        thread.start()
        thread.join(self.hub_timeout + 1)
        return result[0] if result else f"no answer within {self.hub_timeout:g} s"

    def _notify(self, message: str) -> None:
        """Run `on_loading` in the event loop that called `embed`; a failing callback never fails the load."""
        callback = self.on_loading
        if callback is None:
            return

        async def call() -> None:
            try:
                outcome = callback(message)
                if inspect.isawaitable(outcome):
                    await outcome
            except Exception:
                log.warning("on_loading callback failed", exc_info=True)

        try:
            anyio.from_thread.run(call)
        except RuntimeError:  # not in an anyio worker thread: a direct, synchronous caller
            try:
                outcome = callback(message)
                if inspect.iscoroutine(outcome):
                    outcome.close()  # no event loop here to run it in
            except Exception:
                log.warning("on_loading callback failed", exc_info=True)


# ---- helpers -------------------------------------------------------------------------------------------------


_Job = tuple[list[tuple[int, str, TruncationMode]], list[tuple[int, bytes]]]  # one call's (texts, images)


def _job_size(job: _Job) -> int:
    """Texts a call adds to a shared run; a call with images runs alone (its decode errors stay its own)."""
    texts, images = job
    return MAX_TEXT_BATCH if images else len(texts)


def _truthy(value: str | None) -> bool:
    return (value or "").strip().upper() in {"1", "TRUE", "YES", "ON"}


class _quiet_fastembed:
    """fastembed logs errors (loguru) when a model is not cached; while we only probe the cache, that is noise."""

    def __enter__(self) -> None:
        try:
            from loguru import logger

            logger.disable("fastembed")
        except ImportError:  # pragma: no cover - loguru is a fastembed dependency
            pass

    def __exit__(self, *exc: object) -> None:
        try:
            from loguru import logger

            logger.enable("fastembed")
        except ImportError:  # pragma: no cover
            pass


def _token_counter(text_model: Any, max_tokens: int) -> tuple[Tokenizer | None, int]:
    """A copy of the model's tokenizer without truncation/padding, and the tokens a text may use.

    The window is the tokenizer's own limit or the family's cap, whichever is lower, less the special tokens.
    fastembed keeps the tokenizer on ``TextEmbedding.model.tokenizer``; if a future version moves it,
    truncation still happens inside fastembed, we just cannot report where.
    """
    tokenizer = getattr(getattr(text_model, "model", None), "tokenizer", None)
    if tokenizer is None or not tokenizer.truncation:
        return None, 0
    from tokenizers import Tokenizer

    counter = Tokenizer.from_str(tokenizer.to_str())
    counter.no_truncation()
    counter.no_padding()
    specials = len(counter.encode("a").ids) - len(counter.encode("a", add_special_tokens=False).ids)
    window = min(int(tokenizer.truncation["max_length"]), max_tokens)
    return counter, max(1, window - specials)
