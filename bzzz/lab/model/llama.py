"""A real model in the lab model server: a GGUF file run by llama.cpp
(`llama-cpp-python`, 0.3.16; later versions crash on these machines), answering
ollama's API as ollama answers it.

    LabModelServer(models={"smollm2": LlamaModel(find_gguf("smollm2").path)})

As ollama does:
- `options`: `num_ctx` (the window; 4096 when not given, at most what the model was
  trained for; a new size reloads the model), `num_predict` (the longest reply; -1 or
  none: until the window is full), `temperature` (0: always the likeliest token),
  `top_k`, `top_p`, `min_p`, `repeat_penalty`, `seed`.
- a prompt longer than the window loses its oldest messages, the system messages and
  the last one kept; if that is not enough, the middle of what is left (ollama's
  truncation: the issue text of a long conversation is lost without a word).
- `format`: "json" or a JSON schema, enforced by a llama.cpp grammar.
- `done_reason` "length" when the reply stopped at num_predict or at a full window,
  "stop" at the model's end of turn; `prompt_eval_count` counts the whole prompt,
  `eval_count` the reply's tokens.
- one request at a time per model (OLLAMA_NUM_PARALLEL=1); others wait their turn.

The prompt is the GGUF's own chat template. A model without one (Gemma 3 270M, a base
model) gets llama.cpp's format for its architecture, where Gemma's drops system
messages: so the system text is folded into the first user turn. No tools, images,
`stop` strings or thinking.
"""

from __future__ import annotations

import codecs
import ctypes
import json
import logging
import os
import re
import threading
import time
from collections.abc import Generator, Mapping, Sequence
from pathlib import Path
from typing import Any

from bzzz.lab.model.chat import BadRequest, ChatRequest, Message
from bzzz.lab.model.generative import Finished, Generative
from bzzz.lab.model.wire import ModelCard

DEFAULT_NUM_CTX = 4096  # ollama's default window
BATCH = 256  # prompt tokens evaluated at once (llama.cpp keeps logits for a batch)
KEEP_TOKENS = 4  # kept at the start when a prompt is cut in the middle (ollama's num_keep)
# ollama's defaults for what a request's options do not say
DEFAULTS: dict[str, float] = {
    "temperature": 0.8,
    "top_k": 40,
    "top_p": 0.9,
    "min_p": 0.0,
    "repeat_penalty": 1.1,
}

log = logging.getLogger(__name__)


class LlamaUnavailable(RuntimeError):
    pass


def _llama_cpp() -> Any:
    try:
        import llama_cpp  # noqa: PLC0415 - only a lab that serves a GGUF model needs it
    except ImportError as exc:
        raise LlamaUnavailable(
            f"llama-cpp-python is not installed ({exc}). Fix: .venv/bin/pip install"
            " llama-cpp-python==0.3.16 (it builds llama.cpp from source, ~2.5 min),"
            " or ./scripts/setup --dev"
        ) from None
    if not _QUIET:  # llama.cpp's own lines go to this module's log, not to stderr
        _QUIET.append(llama_cpp.llama_log_callback(_llama_log))
        llama_cpp.llama_log_set(_QUIET[0], ctypes.c_void_p(0))
    return llama_cpp


_QUIET: list[Any] = []  # the callback given to llama.cpp, kept alive here
GGML_LOG_ERROR = 4


def _llama_log(level: int, text: bytes, user_data: object) -> None:
    line = text.decode("utf-8", "replace").rstrip()
    if line:
        log.log(
            logging.WARNING if level == GGML_LOG_ERROR else logging.DEBUG, "llama.cpp: %s", line
        )


class LlamaModel(Generative):
    """One GGUF model, loaded once (memory-mapped) and reloaded only for another window."""

    def __init__(self, path: Path, *, threads: int | None = None) -> None:
        self.path = path
        self.threads = threads or min(4, os.cpu_count() or 1)
        self._lib = _llama_cpp()
        self._lock = threading.Lock()
        self._window = 0
        self._llm: Any = None
        llm = self._load(DEFAULT_NUM_CTX)
        meta: Mapping[str, str] = llm.metadata
        self.architecture = meta.get("general.architecture", "llama")
        self.template = meta.get("tokenizer.chat_template", "")
        self.trained = int(llm._model.n_ctx_train())
        self.card = ModelCard(
            family=self.architecture,
            format="gguf",
            parameter_size=_size_label(int(llm._model.n_params())),
            quantization_level=_quantization(path.name),
            size=path.stat().st_size,
            parameter_count=int(llm._model.n_params()),
            context_length=self.trained,
            template=self.template,
            about=f"{path.name}, run by llama.cpp in the Bzzz lab model server",
        )
        self._format = self._formatter(llm)

    def __repr__(self) -> str:
        return f"LlamaModel({str(self.path)!r})"

    # the request

    def generate(self, request: ChatRequest) -> Generator[str | Finished, None, None]:
        options = dict(request.options)
        window = min(self.trained, _int(options, "num_ctx", DEFAULT_NUM_CTX))
        if window < 16:
            raise BadRequest(f"num_ctx must be at least 16, not {window}")
        predict = _int(options, "num_predict", -1)
        grammar = self._grammar(request.format)
        sampling = {key: _float(options, key, value) for key, value in DEFAULTS.items()}
        seed = options.get("seed")
        return self._generate(
            request.messages,
            window=window,
            predict=predict,
            grammar=grammar,
            sampling=sampling,
            seed=seed,
        )

    def _grammar(self, wanted: str | Mapping[str, Any] | None) -> Any:
        if not wanted:
            return None
        grammars = self._lib.llama_grammar
        try:
            if wanted == "json":
                return grammars.LlamaGrammar.from_string(grammars.JSON_GBNF, verbose=False)
            return grammars.LlamaGrammar.from_json_schema(json.dumps(wanted), verbose=False)
        except Exception as exc:
            raise BadRequest(f"invalid JSON schema in format: {exc}") from None

    def _generate(
        self,
        messages: Sequence[Message],
        *,
        window: int,
        predict: int,
        grammar: Any,
        sampling: dict[str, float],
        seed: object,
    ) -> Generator[str | Finished, None, None]:
        with self._lock:
            llm = self._load(window)
            if isinstance(seed, int):
                llm.set_seed(seed)
            tokens = self._prompt(llm, messages, window)
            room = window - len(tokens)
            limit = room if predict <= 0 else min(predict, room)
            vocab = llm._model.vocab
            decoder = codecs.getincrementaldecoder("utf-8")("replace")
            started = time.monotonic_ns()
            first = started
            written: list[int] = []
            reason = "length"
            generation = llm.generate(
                tokens,
                temp=sampling["temperature"],
                top_k=int(sampling["top_k"]),
                top_p=sampling["top_p"],
                min_p=sampling["min_p"],
                repeat_penalty=sampling["repeat_penalty"],
                grammar=grammar,
            )
            try:
                for token in generation if limit > 0 else ():
                    if not written:
                        first = time.monotonic_ns()
                    if self._lib.llama_token_is_eog(vocab, token):
                        reason = "stop"
                        break
                    piece = decoder.decode(llm.detokenize([token]))
                    written.append(token)
                    if piece:
                        yield piece
                    if len(written) >= limit:
                        break
            finally:
                generation.close()
            if tail := decoder.decode(b"", final=True):
                yield tail
            done = time.monotonic_ns()
            yield Finished(reason, len(tokens), len(written), first - started, done - first)

    # the prompt, as ollama builds it

    def _prompt(self, llm: Any, messages: Sequence[Message], window: int) -> list[int]:
        """The tokens of `messages` in the chat template, the oldest messages dropped (the
        system messages and the last one kept) while they do not fit the window."""
        kept = list(messages)
        while True:
            tokens = self._tokens(llm, kept)
            droppable = [
                i for i, m in enumerate(kept[:-1]) if m.role != "system"
            ]  # never the last message
            if len(tokens) < window or not droppable:
                break
            del kept[droppable[0]]
        if len(tokens) >= window:  # still too long: ollama cuts the middle
            keep = window - max(1, window // 4) - KEEP_TOKENS
            tokens = tokens[:KEEP_TOKENS] + tokens[-keep:]
        return tokens

    def _tokens(self, llm: Any, messages: Sequence[Message]) -> list[int]:
        chat = [{"role": m.role, "content": m.content} for m in messages]
        if self._folds:
            chat = _fold_system(chat)
        formatted = self._format(messages=chat)
        prompt: str = formatted.prompt
        add_bos = not getattr(formatted, "added_special", False)
        return list(llm.tokenize(prompt.encode("utf-8"), add_bos=add_bos, special=True))

    def _formatter(self, llm: Any) -> Any:
        formats = self._lib.llama_chat_format
        self._folds = False
        if self.template:
            model = llm._model
            eos, bos = llm.token_eos(), llm.token_bos()
            return formats.Jinja2ChatFormatter(
                template=self.template,
                eos_token=model.token_get_text(eos) if eos != -1 else "",
                bos_token=model.token_get_text(bos) if bos != -1 else "",
                stop_token_ids=[eos],
            )
        if self.architecture.startswith("gemma"):
            self._folds = True
            return formats.format_gemma
        return formats.format_chatml

    def _load(self, window: int) -> Any:
        if self._llm is not None and self._window == window:
            return self._llm
        if self._llm is not None:
            self._llm.close()
        self._llm = self._lib.Llama(
            model_path=str(self.path),
            n_ctx=window,
            n_batch=min(BATCH, window),
            n_threads=self.threads,
            verbose=False,
        )
        self._window = window
        return self._llm


def _fold_system(chat: list[dict[str, str]]) -> list[dict[str, str]]:
    """The system messages' text put in front of the first user message."""
    system = "\n\n".join(m["content"] for m in chat if m["role"] == "system")
    rest = [dict(m) for m in chat if m["role"] != "system"]
    if system:
        first = next((m for m in rest if m["role"] == "user"), None)
        if first is None:
            rest.insert(0, {"role": "user", "content": system})
        else:
            first["content"] = f"{system}\n\n{first['content']}"
    return rest


def _int(options: Mapping[str, Any], key: str, default: int) -> int:
    value = options.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise BadRequest(f"option {key} must be a number, not {value!r}")
    return int(value)


def _float(options: Mapping[str, Any], key: str, default: float) -> float:
    value = options.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise BadRequest(f"option {key} must be a number, not {value!r}")
    return float(value)


def _size_label(parameters: int) -> str:
    if parameters >= 1_000_000_000:
        return f"{parameters / 1e9:.1f}B"
    return f"{parameters / 1e6:.0f}M"


def _quantization(filename: str) -> str:
    found = re.search(r"(?i)\b(q\d(?:_[a-z0-9]+)*|f16|f32|bf16)\b", filename.replace(".", " "))
    return found.group(1).upper() if found else "unknown"
