"""`edgeswin review`: the device's hard examples, looked at and labelled by a person.

examples.py (the waiting frames; each decision one atomic move into `<label>/*.jpg`) ->
app.py (the page: Flask, its checks) and confusion.py (the matrix on the reviewed frames) ->
command.py (options, token, server). What it writes is what `eval`, `quantize` and
`finetune` read. Never imported by the daemon.
"""
