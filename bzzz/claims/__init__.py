"""Claims without a coordinator: matching, the forge's claim record, and the claim state machine."""
