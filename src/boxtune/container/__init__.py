"""The managed platform's container contract ("bring your own container").

The platform starts the image as ``docker run IMAGE train`` or ``docker run IMAGE serve`` and
talks to it through files under ``/opt/ml`` and port 8080:

- :mod:`~boxtune.container.layout`: where each file of the contract lives (a configurable root);
- :mod:`~boxtune.container.job_config`: the job's configuration files (hyperparameters, input
  channels, hosts), read and checked;
- :mod:`~boxtune.container.channels`: the data channels and the model channel's artifact;
- :mod:`~boxtune.container.publish`: the trained artifact into ``/opt/ml/model``, extra outputs
  into ``/opt/ml/output/data``, the reason of a failure into ``/opt/ml/output/failure``;
- :mod:`~boxtune.container.stopping`: the platform's SIGTERM, turned into a clean stop;
- :mod:`~boxtune.container.train` and :mod:`~boxtune.container.serve`: the two programs, over
  :func:`boxtune.train.train` and ``boxtune serve``;
- :mod:`~boxtune.container.entrypoint`: the image's ENTRYPOINT (``boxtune-container``).
"""
