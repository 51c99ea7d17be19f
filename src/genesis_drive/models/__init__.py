"""Networks, in one place: shared blocks, the latent-codec interface, evaluator networks, camera and
LiDAR generative models. Modules here import only from ``data``, ``layout`` and each other (never
from ``train``, ``eval`` or the CLI); training recipes live in ``train/tasks``, metrics in ``eval``."""
