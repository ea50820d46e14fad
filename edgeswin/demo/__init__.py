"""`edgeswin demo`: the bundled demo videos with ground truth (`assets`, from `scenes`) and the
daemon run on them with a live view and a closing summary (`live`). Above the daemon: nothing in
the daemon imports it.
"""
