"""Scale-out on Ray (an optional extra: requirements-ray.txt). Nothing here is imported unless
`--ray` is asked for, so the studio runs without Ray installed.

    cluster.py     joining a Ray cluster (or starting a local one), sizing the engines on it, and
                   errors that cross process boundaries intact
    ray_runner.py  RayRunner: a clip Runner (service/clips.py) whose clips are rendered by Ray
                   actors, each holding its own Synthesizer; failed actors are replaced
    serving.py     the studio's engine as N Ray Serve replicas: the launcher's Synthesizer keeps
                   voices, history and admission and sends each synthesis to a replica
See docs/scale-out.md.
"""
