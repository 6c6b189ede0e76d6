"""Batch embedding jobs: a jsonl/csv/parquet column in, a parquet file of vectors out.

``job`` runs a job on this machine (through a router URL or the router in-process),
``ray_runner`` the same job on a Ray cluster; both share reading and dedupe (``source``,
``plan``), the checkpoint (``checkpoint``) and the output (``output``), so their files and
resume behave the same. Needs the ``batch`` extra (pyarrow, tqdm); Ray needs the ``ray`` extra.
"""
