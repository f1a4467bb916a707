"""LocalEmbedder on tiny hand-made models in each family's file layout: the real fastembed loading code, no downloads.

The CLIP fixture is laid out like Qdrant/clip-ViT-B-32-{text,vision} (text/ and vision/), the jina fixture like
the jinaai/jina-clip-v1 repository (onnx/text_model.onnx, onnx/vision_model.onnx, one tokenizer); both load
through fastembed's own classes for those names. Tests that do not depend on the layout run on both.
"""

from __future__ import annotations

import io
import json
import shutil
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import anyio.lowlevel
import numpy as np
import pytest
from fixtures.tiny_clip import MAX_TOKENS, TINY_MODEL_ID, build_tiny_clip
from fixtures.tiny_jina_clip import MAX_TOKENS as JINA_MAX_TOKENS
from fixtures.tiny_jina_clip import TINY_JINA_ID, build_tiny_jina_clip
from PIL import Image

from nova_mcp_server.embedders.base import Embedder
from nova_mcp_server.embedders.local import LocalEmbedder
from nova_mcp_server.errors import DimensionMismatch, InvalidInput, ModelUnavailable
from nova_mcp_server.schema import (
    AudioInput,
    EmbeddingPurpose,
    EmbeddingType,
    ImageInput,
    MediaSource,
    SingleEmbeddingParams,
    SingleEmbeddingRequest,
    TextInput,
    TextSource,
    TruncationMode,
    VideoInput,
)

DIM = 16
JINA_DIM = 24
WINDOW = {"clip": MAX_TOKENS - 2, "jina": JINA_MAX_TOKENS - 2}  # tokens of text each reads ([CLS]/[SEP], BOS/EOS)
RGB = {"red": (255, 0, 0), "green": (0, 255, 0), "blue": (0, 0, 255)}


@pytest.fixture(scope="module")
def tiny_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_clip(tmp_path_factory.mktemp("tiny_clip"), dim=DIM)


@pytest.fixture(scope="module")
def tiny_jina(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_jina_clip(tmp_path_factory.mktemp("tiny_jina"), dim=JINA_DIM)


@pytest.fixture(scope="module", params=["clip", "jina"])
def embedder(request: pytest.FixtureRequest, tiny_clip: Path, tiny_jina: Path) -> LocalEmbedder:
    """One loaded-on-demand embedder per family shared by the read-only tests (loading is checked elsewhere)."""
    embedder = LocalEmbedder(model_path=tiny_clip if request.param == "clip" else tiny_jina)
    embedder.tag = request.param  # type: ignore[attr-defined]
    return embedder


@pytest.fixture
def no_hub_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name in ("HF_HUB_OFFLINE", "HF_ENDPOINT", "FASTEMBED_CACHE_PATH"):
        monkeypatch.delenv(name, raising=False)
    yield


def text_request(value: str, mode: TruncationMode = TruncationMode.END, **params: object) -> SingleEmbeddingRequest:
    return SingleEmbeddingRequest(
        single_embedding_params=SingleEmbeddingParams(
            embedding_purpose=EmbeddingPurpose.GENERIC_RETRIEVAL,
            text=TextInput(value=value, truncation_mode=mode),
            **params,
        )
    )


def png(rgb: tuple[int, int, int], size: tuple[int, int] = (48, 40)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, rgb).save(buffer, format="PNG")
    return buffer.getvalue()


def image_request(raw: bytes, fmt: str = "png") -> SingleEmbeddingRequest:
    return SingleEmbeddingRequest(
        single_embedding_params=SingleEmbeddingParams(
            embedding_purpose=EmbeddingPurpose.GENERIC_INDEX,
            image=ImageInput(format=fmt, source=MediaSource.from_bytes(raw)),
        )
    )


async def vectors(embedder: LocalEmbedder, requests: list[SingleEmbeddingRequest]) -> np.ndarray:
    return np.array([items[0].embedding for items in await embedder.embed(requests)])


# ---- laziness and loading ------------------------------------------------------------------------------------


def test_construction_imports_and_loads_nothing(tiny_clip: Path) -> None:
    """Run in a fresh interpreter: other tests in this process have imported fastembed already."""
    code = (
        "import sys\n"
        "from nova_mcp_server.embedders.local import LocalEmbedder\n"
        f"e = LocalEmbedder(model_path={str(tiny_clip)!r})\n"
        "print(e.status(), e.loaded, e.info.model, e.info.default_dimension, "
        "'fastembed' in sys.modules, 'onnxruntime' in sys.modules, sep='|')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert out.stdout.strip() == f"not loaded yet|False|{TINY_MODEL_ID}|{DIM}|False|False"


def test_info_is_known_before_loading(tiny_clip: Path, tiny_jina: Path, tmp_path: Path) -> None:
    tiny = LocalEmbedder(model_path=tiny_clip)
    assert isinstance(tiny, Embedder)
    assert (tiny.info.provider, tiny.info.model, tiny.info.dimensions, tiny.info.default_dimension) == (
        "local",
        TINY_MODEL_ID,
        [DIM],
        DIM,
    )
    assert tiny.info.modalities == ["text", "image"] and tiny.info.supports_async is False

    real = LocalEmbedder(cache_dir=tmp_path)  # the default family: known from the table, nothing read
    assert (real.info.model, real.info.dimensions, real.info.max_text_chars) == ("jinaai/jina-clip-v1", [768], 2000)
    assert real.status() == "not loaded yet"
    small = LocalEmbedder("qdrant/CLIP-vit-b-32", cache_dir=tmp_path)  # names are case-insensitive
    assert (small.info.model, small.info.dimensions, small.info.max_text_chars) == ("Qdrant/clip-ViT-B-32", [512], 300)

    jina = LocalEmbedder(model_path=tiny_jina)  # the folder's layout names the family
    assert (jina.family.name, jina.info.model, jina.info.default_dimension) == ("jinaai/jina-clip-v1", TINY_JINA_ID, 24)
    assert LocalEmbedder(model_path=tiny_clip).family.name == "Qdrant/clip-ViT-B-32"


def test_unknown_family_is_refused_at_construction() -> None:
    with pytest.raises(InvalidInput, match="Qdrant/clip-ViT-B-32"):
        LocalEmbedder("acme/not-a-clip")


@pytest.mark.anyio
async def test_status_goes_from_not_loaded_to_loading_to_ready(tiny_clip: Path) -> None:
    seen: list[tuple[str, str]] = []
    embedder = LocalEmbedder(model_path=tiny_clip)
    embedder.on_loading = lambda message: seen.append((message, embedder.status()))
    assert embedder.status() == "not loaded yet" and not embedder.loaded

    await embedder.embed([text_request("red")])

    assert embedder.status() == "ready" and embedder.loaded
    assert len(seen) == 1
    message, status_during_load = seen[0]
    assert status_during_load == "loading"
    assert "first use" in message and TINY_MODEL_ID in message


@pytest.mark.anyio
async def test_async_on_loading_callback_runs_in_the_event_loop(tiny_clip: Path) -> None:
    seen: list[str] = []

    async def on_loading(message: str) -> None:
        await anyio.sleep(0)  # only possible in the caller's event loop
        seen.append(message)

    embedder = LocalEmbedder(model_path=tiny_clip, on_loading=on_loading)
    await embedder.embed([text_request("blue")])
    assert len(seen) == 1


@pytest.mark.anyio
async def test_concurrent_first_calls_load_once(tiny_clip: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Four first calls at once: the model is constructed once. The constructor waits (an event, no sleep)
    until all four calls have reached the load lock, so the overlap is certain, not a matter of timing."""
    import fastembed

    arrived = threading.Semaphore(0)

    class CountingLock:
        def __init__(self) -> None:
            self._lock = threading.Lock()

        def __enter__(self) -> None:
            arrived.release()
            self._lock.acquire()

        def __exit__(self, *exc: object) -> None:
            self._lock.release()

    constructed: list[str] = []
    original = fastembed.TextEmbedding

    class CountingTextEmbedding(original):  # type: ignore[misc, valid-type]
        def __init__(self, *args: object, **kwargs: object) -> None:
            constructed.append(str(args[0]))
            if len(constructed) == 1:
                for _ in range(4):  # every call is at the lock while the first one loads
                    assert arrived.acquire(timeout=30), "a first call never reached the load lock"
            super().__init__(*args, **kwargs)

    monkeypatch.setattr(fastembed, "TextEmbedding", CountingTextEmbedding)
    notices: list[str] = []
    embedder = LocalEmbedder(model_path=tiny_clip, on_loading=notices.append)
    embedder._lock = CountingLock()  # type: ignore[assignment]
    results: dict[int, list[float]] = {}

    async def call(i: int) -> None:
        results[i] = (await embedder.embed([text_request(["red", "green", "blue", "cat"][i])]))[0][0].embedding

    async with anyio.create_task_group() as tg:
        for i in range(4):
            tg.start_soon(call, i)

    assert constructed == ["Qdrant/clip-ViT-B-32-text"]
    assert len(notices) == 1
    assert len(results) == 4 and embedder.status() == "ready"


# ---- one space for text and images ---------------------------------------------------------------------------


@pytest.mark.anyio
async def test_colour_words_find_their_images(embedder: LocalEmbedder) -> None:
    names = list(RGB)
    images = await vectors(embedder, [image_request(png(RGB[name])) for name in names])
    texts = await vectors(embedder, [text_request(name) for name in names])
    similarity = texts @ images.T
    for row, name in enumerate(names):
        assert names[int(np.argmax(similarity[row]))] == name, similarity
    assert similarity[0, 0] > 0.95  # "red" vs the red image: same direction, by construction
    assert similarity[0, 1] < 0.2 and similarity[0, 2] < 0.2


@pytest.mark.anyio
async def test_texts_rank_by_shared_words(embedder: LocalEmbedder) -> None:
    docs = ["a red square", "a blue square", "the cat is sleeping"]
    doc_vectors = await vectors(embedder, [text_request(doc) for doc in docs])
    query = (await vectors(embedder, [text_request("A red square!")]))[0]  # case and punctuation ignored
    scores = doc_vectors @ query
    assert list(np.argsort(-scores)) == [0, 1, 2], scores
    assert scores[0] > 0.99


@pytest.mark.anyio
async def test_mixed_batch_keeps_order_types_norm_and_dimension(embedder: LocalEmbedder) -> None:
    requests = [
        text_request("blue"),
        image_request(png(RGB["green"])),
        text_request("green"),
        image_request(png(RGB["blue"], size=(640, 480))),
    ]
    results = await embedder.embed(requests)
    assert [len(items) for items in results] == [1, 1, 1, 1]
    kinds = [items[0].embedding_type for items in results]
    assert kinds == [EmbeddingType.TEXT, EmbeddingType.IMAGE, EmbeddingType.TEXT, EmbeddingType.IMAGE]
    matrix = np.array([items[0].embedding for items in results])
    assert matrix.shape == (4, embedder.dimension)
    np.testing.assert_allclose(np.linalg.norm(matrix, axis=1), 1.0, atol=1e-5)
    assert matrix[0] @ matrix[3] > 0.95 and matrix[1] @ matrix[2] > 0.95  # order kept: blue~blue, green~green
    assert all(items[0].truncated_char_length is None for items in results)


@pytest.mark.anyio
async def test_images_in_other_formats_and_modes(embedder: LocalEmbedder) -> None:
    """RGBA, palette and greyscale images are converted to RGB; JPEG and GIF decode."""
    buffers = []
    for mode, fmt in (("RGBA", "PNG"), ("P", "GIF"), ("RGB", "JPEG"), ("L", "WEBP")):
        image = Image.new("RGB", (64, 64), RGB["red"]).convert(mode)
        buffer = io.BytesIO()
        image.save(buffer, format=fmt)
        buffers.append((buffer.getvalue(), fmt.lower()))
    out = await vectors(embedder, [image_request(raw, fmt) for raw, fmt in buffers])
    red = (await vectors(embedder, [text_request("red")]))[0]
    grey = (await vectors(embedder, [text_request("grey")]))[0]
    assert [round(float(v @ red), 1) for v in out[:3]] == [1.0, 1.0, 1.0]
    assert out[3] @ grey > 0.95  # a greyscale image of red is grey


@pytest.mark.anyio
async def test_undecodable_image_is_invalid_input(embedder: LocalEmbedder) -> None:
    with pytest.raises(InvalidInput, match="could not be decoded"):
        await embedder.embed([text_request("red"), image_request(b"this is not an image")])


# ---- truncation ----------------------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_long_text_is_truncated_and_reported(embedder: LocalEmbedder) -> None:
    budget = WINDOW[embedder.tag]  # type: ignore[attr-defined]
    head, tail = ["red"] * budget, ["blue"] * 20
    text = " ".join(head + tail)
    cut = len(" ".join(head))

    end, start = await embedder.embed([text_request(text), text_request(text, TruncationMode.START)])

    assert end[0].truncated_char_length == cut
    assert np.asarray(end[0].embedding) @ (await vectors(embedder, [text_request("red")]))[0] > 0.999
    assert start[0].truncated_char_length == len(" ".join(["red"] * 20)) + 1  # the first 20 words are dropped
    mixed = (await vectors(embedder, [text_request(" ".join(["red"] * (budget - 20) + ["blue"] * 20))]))[0]
    np.testing.assert_allclose(start[0].embedding, mixed, atol=1e-6)

    with pytest.raises(InvalidInput, match=f"reads at most {budget}"):
        await embedder.embed([text_request(text, TruncationMode.NONE)])
    fits = await embedder.embed([text_request(" ".join(head), TruncationMode.NONE)])
    assert fits[0][0].truncated_char_length is None


# ---- refusals ------------------------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_audio_and_video_are_refused_before_loading(tiny_clip: Path) -> None:
    embedder = LocalEmbedder(model_path=tiny_clip)
    media = MediaSource.from_bytes(b"\x00" * 64)
    audio = SingleEmbeddingRequest(
        single_embedding_params=SingleEmbeddingParams(
            embedding_purpose=EmbeddingPurpose.GENERIC_INDEX, audio=AudioInput(format="wav", source=media)
        )
    )
    video = SingleEmbeddingRequest(
        single_embedding_params=SingleEmbeddingParams(
            embedding_purpose=EmbeddingPurpose.GENERIC_INDEX, video=VideoInput(format="mp4", source=media)
        )
    )
    with pytest.raises(InvalidInput, match="embeds text and images only") as audio_error:
        await embedder.embed([audio])
    assert "audio extra" in audio_error.value.text
    with pytest.raises(InvalidInput, match="Request 1 is video") as video_error:
        await embedder.embed([text_request("red"), video])
    assert "key frames" in video_error.value.text
    assert not embedder.loaded and embedder.status() == "not loaded yet"


@pytest.mark.anyio
async def test_s3_sources_are_refused(tiny_clip: Path) -> None:
    embedder = LocalEmbedder(model_path=tiny_clip)
    s3_text = SingleEmbeddingRequest(
        single_embedding_params=SingleEmbeddingParams(
            embedding_purpose=EmbeddingPurpose.GENERIC_INDEX,
            text=TextInput(source=TextSource.model_validate({"s3Location": {"uri": "s3://bucket/a.txt"}})),
        )
    )
    s3_image = SingleEmbeddingRequest(
        single_embedding_params=SingleEmbeddingParams(
            embedding_purpose=EmbeddingPurpose.GENERIC_INDEX,
            image=ImageInput(format="png", source=MediaSource.from_s3("s3://bucket/a.png")),
        )
    )
    for request in (s3_text, s3_image):
        with pytest.raises(InvalidInput, match="from S3"):
            await embedder.embed([request])
    assert not embedder.loaded


@pytest.mark.anyio
async def test_a_dimension_other_than_the_models_is_refused(tiny_clip: Path) -> None:
    embedder = LocalEmbedder(model_path=tiny_clip)
    with pytest.raises(DimensionMismatch, match=f"produces {DIM}-dimensional vectors only") as error:
        await embedder.embed([text_request("red", embedding_dimension=256)])
    assert isinstance(error.value, InvalidInput)
    assert not embedder.loaded
    # The Nova default (3072) applies only when a request names no dimension; then the model's own is used.
    assert len((await embedder.embed([text_request("red")]))[0][0].embedding) == DIM
    # Naming the model's own dimension works (built unvalidated: the schema's Dimension lists Nova's only).
    params = SingleEmbeddingParams.model_construct(
        embedding_purpose=EmbeddingPurpose.GENERIC_INDEX, embedding_dimension=DIM, text=TextInput(value="red")
    )
    explicit = SingleEmbeddingRequest.model_construct(single_embedding_params=params)
    assert len((await embedder.embed([explicit]))[0][0].embedding) == DIM


@pytest.mark.anyio
async def test_no_requests_means_no_load(tiny_clip: Path) -> None:
    embedder = LocalEmbedder(model_path=tiny_clip)
    assert await embedder.embed([]) == []
    assert not embedder.loaded


# ---- missing models ------------------------------------------------------------------------------------------


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.anyio
async def test_uncached_model_with_no_hub_fails_fast_with_instructions(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_hub_env: None
) -> None:
    # Point the hub at a closed local port, so the test behaves the same with or without internet access.
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{_closed_port()}")
    cache = tmp_path / "models"
    embedder = LocalEmbedder(cache_dir=cache)

    with anyio.fail_after(120), pytest.raises(ModelUnavailable) as error:  # a hang guard, not a speed bound
        await embedder.embed([text_request("red")])

    text = error.value.text
    assert "not reachable" in text
    assert "Run once with internet access" in text and str(cache) in text
    assert "NOVA_MCP_LOCAL_MODEL_PATH" in text and "--local-model-path" in text
    assert "onnx/text_model.onnx" in text and "onnx/vision_model.onnx" in text  # the default family's layout
    assert "Qdrant/clip-ViT-B-32" in text  # the smaller family is offered
    assert embedder.status().startswith("error: ") and not embedder.loaded


@pytest.mark.anyio
async def test_hub_offline_env_skips_the_network(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_hub_env: None
) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    embedder = LocalEmbedder(cache_dir=tmp_path)
    monkeypatch.setattr(embedder, "_hub_unreachable", lambda: pytest.fail("must not contact the hub"))
    with pytest.raises(ModelUnavailable, match="HF_HUB_OFFLINE is set"):
        await embedder.embed([image_request(png(RGB["red"]))])


@pytest.mark.anyio
async def test_a_silent_hub_cannot_hang_the_load(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_hub_env: None
) -> None:
    with socket.socket() as listener:  # accepts connections into its backlog, never answers
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{listener.getsockname()[1]}")
        embedder = LocalEmbedder(cache_dir=tmp_path, hub_timeout=1.0)
        with anyio.fail_after(120), pytest.raises(ModelUnavailable, match="not reachable"):  # hang guard only
            await embedder.embed([text_request("red")])


@pytest.mark.anyio
async def test_model_path_with_missing_files_names_them(tiny_clip: Path, tmp_path: Path) -> None:
    broken = tmp_path / "broken"
    shutil.copytree(tiny_clip, broken)
    (broken / "vision" / "preprocessor_config.json").unlink()
    (broken / "text" / "tokenizer.json").unlink()
    embedder = LocalEmbedder(model_path=broken)
    with pytest.raises(ModelUnavailable) as error:
        await embedder.embed([text_request("red")])
    assert "vision/preprocessor_config.json" in error.value.text and "text/tokenizer.json" in error.value.text
    assert str(broken) in error.value.text
    assert embedder.status().startswith("error: ")

    with pytest.raises(ModelUnavailable, match="onnx/text_model.onnx"):  # no layout to read: the default family's
        await LocalEmbedder(model_path=tmp_path / "nowhere").embed([text_request("red")])
    with pytest.raises(ModelUnavailable, match="text/model.onnx"):
        await LocalEmbedder("Qdrant/clip-ViT-B-32", model_path=tmp_path / "nowhere").embed([text_request("red")])


@pytest.mark.anyio
async def test_jina_folder_with_missing_files_names_them(tiny_jina: Path, tmp_path: Path) -> None:
    broken = tmp_path / "broken"
    shutil.copytree(tiny_jina, broken)
    (broken / "onnx" / "vision_model.onnx").unlink()
    (broken / "preprocessor_config.json").unlink()
    with pytest.raises(ModelUnavailable) as error:
        await LocalEmbedder(model_path=broken).embed([text_request("red")])
    assert "onnx/vision_model.onnx, preprocessor_config.json" in error.value.text
    assert "jinaai/jina-clip-v1" in error.value.text


@pytest.mark.anyio
async def test_a_failed_load_is_retried_on_the_next_call(tiny_clip: Path, tmp_path: Path) -> None:
    folder = tmp_path / "late"
    embedder = LocalEmbedder("Qdrant/clip-ViT-B-32", model_path=folder)
    with pytest.raises(ModelUnavailable):
        await embedder.embed([text_request("red")])
    shutil.copytree(tiny_clip / "text", folder / "text")
    shutil.copytree(tiny_clip / "vision", folder / "vision")
    # no nova-mcp.json was there at construction: info says 512 (the family's), the files give 16
    with pytest.raises(ModelUnavailable, match="produced 16-dimensional vectors"):
        await embedder.embed([text_request("red")])


@pytest.mark.anyio
async def test_model_path_config_is_read(tiny_clip: Path, tmp_path: Path) -> None:
    folder = tmp_path / "configured"
    shutil.copytree(tiny_clip, folder)
    (folder / "nova-mcp.json").write_text(json.dumps({"model": "my-clip", "dimension": DIM, "max_text_chars": 120}))
    embedder = LocalEmbedder(model_path=folder)
    assert (embedder.info.model, embedder.info.max_text_chars) == ("my-clip", 120)
    (folder / "nova-mcp.json").write_text("{not json")
    with pytest.raises(InvalidInput, match="nova-mcp.json"):
        LocalEmbedder(model_path=folder)


@pytest.mark.anyio
async def test_a_hub_check_that_ignores_its_timeout_is_abandoned(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_hub_env: None
) -> None:
    """E.g. a DNS lookup stuck in the resolver, which no HTTP timeout bounds."""
    import threading

    import huggingface_hub

    release = threading.Event()
    monkeypatch.setattr(huggingface_hub.HfApi, "model_info", lambda *args, **kwargs: release.wait(30))
    embedder = LocalEmbedder(cache_dir=tmp_path, hub_timeout=0.5)
    try:
        # the message names the 0.5 s budget that fired; the hub stub itself would wait 30 s
        with anyio.fail_after(120), pytest.raises(ModelUnavailable, match=r"no answer within 0.5 s"):
            await embedder.embed([text_request("red")])
    finally:
        release.set()


def _fake_hub_cache(cache: Path, repos: dict[str, Path]) -> None:
    """Lay tiny models out the way huggingface_hub caches the real repositories ({repo: folder to copy})."""
    for repo, source in repos.items():
        folder = cache / ("models--" + repo.replace("/", "--"))
        revision = "0" * 40
        shutil.copytree(source, folder / "snapshots" / revision)
        (folder / "refs").mkdir()
        (folder / "refs" / "main").write_text(revision)


@pytest.mark.anyio
async def test_a_cached_model_loads_without_the_network(
    tiny_clip: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_hub_env: None
) -> None:
    cache = tmp_path / "models"
    _fake_hub_cache(
        cache, {"Qdrant/clip-ViT-B-32-text": tiny_clip / "text", "Qdrant/clip-ViT-B-32-vision": tiny_clip / "vision"}
    )
    embedder = LocalEmbedder("Qdrant/clip-ViT-B-32", cache_dir=cache)
    monkeypatch.setattr(embedder, "_hub_unreachable", lambda: pytest.fail("a cached model needs no hub"))
    # info says 512 (the real family) before loading, so the 16-d tiny copy is caught after loading
    with pytest.raises(ModelUnavailable, match="produced 16-dimensional vectors, but Qdrant/clip-ViT-B-32"):
        await embedder.embed([text_request("red")])

    embedder = LocalEmbedder("Qdrant/clip-ViT-B-32", cache_dir=cache)
    embedder.info = embedder.info.model_copy(update={"dimensions": [DIM], "default_dimension": DIM})
    monkeypatch.setattr(embedder, "_hub_unreachable", lambda: pytest.fail("a cached model needs no hub"))
    red = await vectors(embedder, [text_request("red"), image_request(png(RGB["red"]))])
    assert red[0] @ red[1] > 0.95 and embedder.status() == "ready"


@pytest.mark.anyio
async def test_a_failing_on_loading_callback_does_not_fail_the_load(tiny_clip: Path) -> None:
    def on_loading(message: str) -> None:
        raise RuntimeError("the client went away")

    embedder = LocalEmbedder(model_path=tiny_clip, on_loading=on_loading)
    assert len((await embedder.embed([text_request("red")]))[0][0].embedding) == DIM


@pytest.mark.anyio
async def test_a_cached_jina_repository_loads_without_the_network(
    tiny_jina: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_hub_env: None
) -> None:
    """Both towers come from the one cached jinaai/jina-clip-v1 snapshot, as fastembed downloads it."""
    cache = tmp_path / "models"
    _fake_hub_cache(cache, {"jinaai/jina-clip-v1": tiny_jina})
    embedder = LocalEmbedder(cache_dir=cache)  # the default family
    embedder.info = embedder.info.model_copy(update={"dimensions": [JINA_DIM], "default_dimension": JINA_DIM})
    monkeypatch.setattr(embedder, "_hub_unreachable", lambda: pytest.fail("a cached model needs no hub"))
    red = await vectors(embedder, [text_request("red"), image_request(png(RGB["red"]))])
    assert red[0] @ red[1] > 0.95 and embedder.status() == "ready"


# ---- concurrent calls share model runs ----------------------------------------------------------------------


@pytest.mark.anyio
async def test_concurrent_calls_share_a_run_and_keep_their_own_answers(tiny_clip: Path) -> None:
    """While one call's run is in progress, later calls queue and go as one run; each gets exactly the
    vectors it would get alone, and a call whose text breaks the rules fails alone with its own numbering."""
    embedder = LocalEmbedder(model_path=tiny_clip)
    texts = ["red car", "green tree", "blue sky", "yellow sun"]
    alone = [await vectors(embedder, [text_request(t)]) for t in texts]
    gate, started = threading.Event(), threading.Event()
    runs: list[int] = []
    real = embedder._embed_blocking

    def gated(texts_: list[Any], images: list[Any]) -> Any:
        runs.append(len(texts_))
        if len(runs) == 1:
            started.set()
            gate.wait(10)
        return real(texts_, images)

    embedder._embed_blocking = gated  # type: ignore[method-assign]
    too_long = " ".join(["red"] * (MAX_TOKENS + 10))
    got: dict[int, Any] = {}

    async def call(n: int, requests: list[SingleEmbeddingRequest]) -> None:
        try:
            got[n] = await vectors(embedder, requests)
        except InvalidInput as exc:
            got[n] = exc

    async with anyio.create_task_group() as tg:
        tg.start_soon(call, 0, [text_request(texts[0])])
        await anyio.to_thread.run_sync(started.wait, 10)
        for n, t in enumerate(texts[1:], start=1):
            tg.start_soon(call, n, [text_request(t)])
        tg.start_soon(call, 9, [text_request("red"), text_request(too_long, TruncationMode.NONE)])
        for _ in range(30):
            await anyio.lowlevel.checkpoint()
        gate.set()
    assert runs[:2] == [1, 5]  # the first call alone, then the four queued calls' five texts in one run
    for n in range(4):
        np.testing.assert_allclose(got[n], alone[n], atol=1e-6)
    assert isinstance(got[9], InvalidInput) and got[9].text.startswith("Request 1: the text is")
