"""Default TOML configurations shipped with gego (``calibrate.toml``, ``validate.toml``).

Read them with :func:`gego.workflows.config.load_config`; they are the paper's settings
(Sec 5.3-5.4, Tables 1-2) and the starting point of any user configuration.
"""
