"""``boxtune ui``: the web console over the SDK, the job registry and the endpoints.

Pages are server-rendered shells (``templates/``) with a small script each (``static/``) that
calls the JSON routes under ``/api``; every route calls the library and holds no logic of its
own, so the console, the CLI and the SDK see the same jobs and endpoints.
"""
