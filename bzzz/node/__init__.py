"""One Bzzz peer: the network process, in which trio owns the main thread and all state.

wiring      the composition root: builds every part; `run_node` for `bzzz node`
runtime     Node: starts the parts in order, runs the node's loops, shuts down
scheduler   APScheduler threads for blocking work; results handed to trio
dispatch    routes each accepted message to the part it concerns
membership  liveness, who polls which repository, what live peers offer
offering    whether this node takes tasks, its free slots, its capabilities
readiness   why a node cannot run tasks (pure)
announcer   capabilities and presence messages (when to publish what)
tasks       the task table kept in step with the claim machine, and saved
bridges     the workers' events (Dramatiq) and mDNS, handed to trio
probes      blocking probes (the sandbox)
report      the status report, read off the parts
status      the status report's typed dataclasses (the JSON of `bzzz status`)
"""
