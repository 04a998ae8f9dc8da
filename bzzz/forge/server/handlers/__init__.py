"""The REST API's handlers, one module per resource; `bzzz.forge.server.routes` joins them."""
