"""One module per step of the state machine: each function takes the state a step is given (typed by
batchline.state) and returns what the step stores at its ResultPath, so a retried step recomputes the same
result from the same input and writes the same keys. Handlers parse the event and call these.
"""
