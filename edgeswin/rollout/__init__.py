"""Model rollout: the models each rung has served (`store`), what a start does with each rung
(`rung_plan`), the pure gate that compares a candidate with the live model (`gate`) and the
daemon-side rollouts that open, shadow, promote, watch and roll back (`rollouts`).

Hands on engines to serve and retained `<root>/rollout` payloads.
"""
