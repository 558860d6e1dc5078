"""Quantisation-aware fine-tuning: make the int8 model agree with the float one.

Post-training int8 rounding took about 0.011 of cosine from stage 22's embeddings and
six of the 1 200 held-out pairs its float model got right (docs/model.md, "Stage 22").
The rounding is spread over every layer, so no single layer can be fixed by hand;
instead the network is fine-tuned while it sees its own int8 rounding (Jacob et al.,
"Quantization and Training of Neural Networks for Efficient Integer-Arithmetic-Only
Inference", CVPR 2018), with the float model it started from as the target.

The data flow: ``fold`` (batch norms into the kernels, as the TFLite converter does)
-> ``fake_quant`` (the converter's rounding, simulated in float) -> ``finetune``.
"""
