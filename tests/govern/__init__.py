"""govern/: the fallback policy and levers on scripted traces; power; the governor end to end."""
