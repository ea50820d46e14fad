"""`edgeswin watch`: the other side of the broker. Subscribes to many devices' topics and says,
per device, whether its answers can be trusted: status, cameras offline, health problems, the
canary, how long since its last stats, the serving rung.

`fleet` keeps what each device said (from the retained topics and the periodic stats) and
judges it; `view` writes it as text; `command` connects (`publish.listen`), waits, prints, and
hands on the exit status: with `--once`, 1 when anything is wrong or silent.
"""
