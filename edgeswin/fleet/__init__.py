"""A fleet on the user's own broker: signed desired state, applied with the daemon's own reload
and model rollout, reported back, reverted when it makes things worse.

`bundle` is the signed document and its keys (ed25519); `policy` says whether a device may take
a bundle; `overlay` stages a bundle as the config overlay `load_config` lays over the local
directory and keeps the last good one; `agent` is the device side in the daemon (take, check,
stage, apply, watch, revert, report); `operator` is the other side (`edgeswin fleet keygen |
push | status`).
"""
