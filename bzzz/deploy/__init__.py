"""Installing Bzzz on a machine as services."""
