"""The web monitor: films, the render of one film (Gantt chart, live preview), pools;
controls through the API's own logic (FilmApi). An ASGI app (farm.web.app) served by
`reelfarm serve --local --web-port` (uvicorn in a thread, farm.web.server) and, in the
cluster, by the DirectorServer deployment as its Ray Serve HTTP ingress."""
