"""`python -m bzzz.config` prints docs/configuration.md."""

from bzzz.config.render import render_config_docs

print(render_config_docs(), end="")
