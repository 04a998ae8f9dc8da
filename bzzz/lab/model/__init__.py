"""The lab model server: a stand-in for ollama that answers from scripts, or from a real
GGUF model run by llama.cpp.

No ollama server can run in the lab or in tests, so Bzzz drives the real `ollama` client
against this HTTP server, which speaks ollama's API where Bzzz depends on it and replies
as its models say: a `Scripted` list of steps, the sample repository's `Playbook`, or a
`LlamaModel` (a real small model: `gguf_models(["smollm2"])`). To use ollama itself,
point the node's `ollama_host` at it.

    with LabModelServer(models={"coder": Scripted([run_step("ls"), done_step("ok")])}) as lab:
        client = ollama.Client(host=lab.url, timeout=10)

See docs/labmodel.md.
"""

from bzzz.lab.model.chat import ChatRequest, Message
from bzzz.lab.model.generative import Finished, Generative
from bzzz.lab.model.gguf import Gguf, GgufNotFound, find_gguf, gguf_models
from bzzz.lab.model.registry import Backend, LoggedRequest
from bzzz.lab.model.responders import (
    NO_PLAYBOOK_SUMMARY,
    Embedding,
    Playbook,
    PlaybookEntry,
    Responder,
    Scripted,
    sample_playbook,
)
from bzzz.lab.model.server import LAB_MODEL, LabModelServer, default_models
from bzzz.lab.model.steps import (
    HttpError,
    Reply,
    ScriptError,
    ScriptStep,
    StreamError,
    Text,
    ToolCall,
    done_step,
    load_script,
    parse_script,
    parse_step,
    run_step,
    step_as_json,
)

__all__ = [
    "LAB_MODEL",
    "NO_PLAYBOOK_SUMMARY",
    "Backend",
    "ChatRequest",
    "Embedding",
    "Finished",
    "Generative",
    "Gguf",
    "GgufNotFound",
    "HttpError",
    "LabModelServer",
    "LoggedRequest",
    "Message",
    "Playbook",
    "PlaybookEntry",
    "Reply",
    "Responder",
    "ScriptError",
    "ScriptStep",
    "Scripted",
    "StreamError",
    "Text",
    "ToolCall",
    "default_models",
    "done_step",
    "find_gguf",
    "gguf_models",
    "load_script",
    "parse_script",
    "parse_step",
    "run_step",
    "sample_playbook",
    "step_as_json",
]
