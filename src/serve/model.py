"""An nsplit tail for Triton's Python backend: runs model.onnx beside this file in onnxruntime.

Written by `nsplit package --triton-backend python` for servers without Triton's onnxruntime
backend. The model's inputs and outputs are those of config.pbtxt. When the model batches
(max_batch_size > 0), the requests Triton hands over together are run as one batch: their inputs
are concatenated along the first axis, and the outputs split back per request.
"""

import json
import os

import numpy as np
import onnxruntime as ort
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def initialize(self, args):
        config = json.loads(args["model_config"])
        path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "model.onnx")
        options = ort.SessionOptions()
        threads = os.environ.get("NSPLIT_TAIL_THREADS")
        if threads:
            options.intra_op_num_threads = int(threads)
        # The config's instance group is KIND_CPU.
        self.session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
        self.inputs = [i["name"] for i in config["input"]]
        self.outputs = [o["name"] for o in config["output"]]
        self.batching = config.get("max_batch_size", 0) > 0

    def execute(self, requests):
        feeds = []
        responses = [None] * len(requests)
        for k, request in enumerate(requests):
            try:
                feeds.append((k, self._feed(request)))
            except Exception as e:  # a request missing an input answers with an error
                responses[k] = _error(e)
        if self.batching and len(feeds) > 1:
            batch = self._run_batch([f for _, f in feeds])
            for (k, _), outputs in zip(feeds, batch):
                responses[k] = outputs
        else:
            for k, feed in feeds:
                responses[k] = self._run(feed)
        return responses

    def _feed(self, request):
        feed = {}
        for name in self.inputs:
            tensor = pb_utils.get_input_tensor_by_name(request, name)
            if tensor is None:
                raise ValueError(f"the request has no input `{name}`")
            feed[name] = tensor.as_numpy()
        return feed

    def _run(self, feed):
        try:
            values = self.session.run(self.outputs, feed)
        except Exception as e:
            return _error(e)
        return _response(self.outputs, values)

    def _run_batch(self, feeds):
        """One onnxruntime run for every request; a failure answers each request on its own."""
        sizes = [next(iter(f.values())).shape[0] for f in feeds]
        try:
            merged = {n: np.concatenate([f[n] for f in feeds]) for n in self.inputs}
            values = self.session.run(self.outputs, merged)
        except Exception:
            return [self._run(f) for f in feeds]
        if any(v.shape[0] != sum(sizes) for v in values):
            return [self._run(f) for f in feeds]  # not batch-aligned after all: one by one
        bounds = np.cumsum(sizes)[:-1]
        # Copies: Triton reads a view of a larger array as the whole array.
        parts = [[np.array(p, copy=True) for p in np.split(v, bounds)] for v in values]
        return [_response(self.outputs, [p[i] for p in parts]) for i in range(len(feeds))]


def _response(names, values):
    tensors = [pb_utils.Tensor(n, np.ascontiguousarray(v)) for n, v in zip(names, values)]
    return pb_utils.InferenceResponse(output_tensors=tensors)


def _error(e):
    return pb_utils.InferenceResponse(output_tensors=[], error=pb_utils.TritonError(str(e)))
