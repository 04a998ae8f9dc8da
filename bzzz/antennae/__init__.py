"""Antennae: a task's plan reviewed by peers before work starts, on the topic
`antennae/meta-discussion/v1`, with escalation to people when the review asks for one or
does not converge.

session  a review session's rules: who reviews, what a round leads to (pure)
prompts  what the models are asked, and how their replies are read (pure)
meeting  the holder's side (post the plan, gather reviews) and the reviewer's side
"""
