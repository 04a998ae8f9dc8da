"""The lab model server: a stand-in for ollama that answers from scripts. Not an LLM.

No ollama server or model can run in the lab or in tests, so Bzzz drives the real
`ollama` client against this HTTP server, which speaks ollama's API where Bzzz depends on
it and replies as its responders say: a `Scripted` list of steps, or the sample
repository's `Playbook`. To use a real model, point the node's `ollama_host` at ollama.

    with LabModelServer(models={"coder": Scripted([run_step("ls"), done_step("ok")])}) as lab:
        client = ollama.Client(host=lab.url, timeout=10)

See docs/labmodel.md.
"""

from bzzz.lab.model.chat import ChatRequest, Message
from bzzz.lab.model.registry import LoggedRequest
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
    "ChatRequest",
    "Embedding",
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
    "load_script",
    "parse_script",
    "parse_step",
    "run_step",
    "sample_playbook",
    "step_as_json",
]
