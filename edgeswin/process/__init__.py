"""Running as a service: sd_notify and journal logging (`notify`), the local control socket
(`control`), what a reload changes (`reload`) and the C heap of a long-running video process
(`heap`).

Hands on plans and requests to the daemon; nothing here touches frames.
"""
