"""Commands that stand beside the daemon: `edgeswin bench` (`bench`), and `fallback-sim`,
`probe` and `snapshot` (`probe`). They use the stages and the daemon; nothing in the daemon
imports them.
"""
