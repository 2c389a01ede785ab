"""Test doubles: the OpenCTI platform double (platform.Platform) and its GraphQL front end.

Import as `fakes.platform` with tests/ on sys.path (harness.common.add_paths() does it);
the modules are deliberately not importable as top-level names, because `platform` would
shadow the standard library module of that name.
"""
