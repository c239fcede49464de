"""The HNSW tuner: measure recall and latency on a sample, recommend the fastest point.

One module per step, run in this order by `run.run_tuning` (the `chroma-operator tune`
command and the tuning Jobs call it):

- `sample`: draw vectors from the collection through Chroma's HTTP API (router or node);
- `truth`: exact top-k by brute force (numpy, or torch on a GPU), in the collection's space;
- `sweep`: build an hnswlib index per maxNeighbors x efConstruction, time every efSearch;
- `recall`: recall@k by distance, as ANN-benchmarks counts it;
- `choose`: the Pareto front and the fastest point meeting the target;
- `report`: the full JSON report, the compact termination message, the plot;
- `live`: optionally try efSearch values on the live collection, honestly.
"""
