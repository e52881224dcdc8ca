"""The model layer: manifest, verified loading, ONNX export with a parity gate, scoring, reasons.

Modules (import the one you need; nothing here runs at import):

- :mod:`.manifest`: the model manifest and the feature schema hash;
- :mod:`.safety`: checks that refuse unsafe or unexpected ONNX files (FAULTS.md M8);
- :mod:`.load`: :func:`~.load.load_verified`, the only way to read a model folder;
- :mod:`.export`: XGBoost → ONNX and the model folder (``model.onnx``, ``manifest.json``);
- :mod:`.parity`: the gate comparing ONNX Runtime with native XGBoost (M1, M2, M6, M11);
- :mod:`.session`: :class:`~.session.ScoringSession`, one onnxruntime session per model version;
- :mod:`.reasons`: top contributing features (tree contributions from the native booster,
  ``model.ubj``, verified by :func:`~.reasons.load_booster`).
"""
