"""The director: owns films end to end (engine loop, film records, events, frame archive).

Every front end (the gRPC API, the web monitor, the CLI's `serve --local`, the Ray
director deployment) talks to a Director; none of them re-implements its rules.
"""
