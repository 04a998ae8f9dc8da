"""The REST API's handlers, one module per resource; `bzzz.lab.forge.routes` joins them."""
