"""The thermal and power governor: measuring (`sensors`, `power`, `nvpmodel`) kept apart from
deciding (`fallback`, pure: scripted readings and a fake clock), and the loop side that moves the
power-mode lever (`governor`).

Hands on `fallback.Action`s (which lever to move: fps, rung, dla, power_mode) to the daemon.
"""
