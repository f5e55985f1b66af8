"""Ray Serve runtime: the director, expert pools and decoders as Serve deployments.

Import `serving.app:build_app` to get the application; nothing here runs at import.
"""
