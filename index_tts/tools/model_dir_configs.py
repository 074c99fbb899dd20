"""The configs and the BPE corpus `make_model_dir` writes, as plain data.

`tiny` is the conformance fixtures' pipeline config (pipeline_*_a.pt) with a text vocabulary and
segment length a usable tokenizer needs; `official` is read from `index_tts/configs/`.
"""

# facebook/w2v-bert-2.0 preprocessor_config.json (spec §2.2.3; fixtures README §5.4).
PREPROCESSOR_CONFIG = {
    "feature_extractor_type": "SeamlessM4TFeatureExtractor",
    "feature_size": 80,
    "num_mel_bins": 80,
    "padding_side": "right",
    "padding_value": 1,
    "processor_class": "Wav2Vec2BertProcessor",
    "return_attention_mask": True,
    "sampling_rate": 16000,
    "stride": 2,
}

# The fixtures' pipeline config (pipeline_*_a.pt), except for a text vocabulary big enough for a
# BPE model that covers English and some Chinese, and room for 200 text tokens per segment.
TINY_CONFIG = {
    "dataset": {"bpe_model": "bpe.model", "sample_rate": 24000, "squeeze": False,
                "mel": {"sample_rate": 24000, "n_fft": 1024, "hop_length": 256, "win_length": 1024,
                        "n_mels": 100, "mel_fmin": 0, "normalize": False}},
    "gpt": {"model_dim": 1280, "max_mel_tokens": 120, "max_text_tokens": 200, "heads": 20,
            "use_mel_codes_as_input": True, "mel_length_compression": 1024, "layers": 2,
            "number_text_tokens": 256, "number_mel_codes": 66, "start_mel_token": 64, "stop_mel_token": 65,
            "start_text_token": 0, "stop_text_token": 1, "train_solo_embeddings": False,
            "condition_type": "conformer_perceiver",
            "condition_module": {"output_size": 32, "linear_units": 64, "attention_heads": 2, "num_blocks": 1,
                                 "input_layer": "conv2d2", "perceiver_mult": 2},
            "emo_condition_module": {"output_size": 24, "linear_units": 48, "attention_heads": 2, "num_blocks": 1,
                                     "input_layer": "conv2d2", "perceiver_mult": 2}},
    "semantic_codec": {"codebook_size": 64, "hidden_size": 1024, "codebook_dim": 8, "vocos_dim": 32,
                       "vocos_intermediate_dim": 64, "vocos_num_layers": 2},
    "s2mel": {
        "preprocess_params": {"sr": 22050, "spect_params": {"n_fft": 1024, "win_length": 1024, "hop_length": 256,
                                                            "n_mels": 80, "fmin": 0, "fmax": "None"}},
        "dit_type": "DiT", "reg_loss_type": "l1", "style_encoder": {"dim": 192},
        "length_regulator": {"channels": 64, "is_discrete": False, "in_channels": 1024, "content_codebook_size": 16,
                             "sampling_ratios": [1, 1], "vector_quantize": False, "n_codebooks": 1,
                             "quantizer_dropout": 0.0, "f0_condition": False, "n_f0_bins": 512},
        "DiT": {"hidden_dim": 64, "num_heads": 4, "depth": 5, "class_dropout_prob": 0.1, "block_size": 8192,
                "in_channels": 80, "style_condition": True, "final_layer_type": "wavenet", "target": "mel",
                "content_dim": 64, "content_codebook_size": 16, "content_type": "discrete", "f0_condition": False,
                "n_f0_bins": 512, "content_codebooks": 1, "is_causal": False, "long_skip_connection": True,
                "zero_prompt_speech_token": False, "time_as_token": False, "style_as_token": False,
                "uvit_skip_connection": True, "add_resblock_in_transformer": False},
        "wavenet": {"hidden_dim": 64, "num_layers": 3, "kernel_size": 5, "dilation_rate": 1, "p_dropout": 0.2,
                    "style_condition": True},
    },
    "gpt_checkpoint": "gpt.pth",
    "w2v_stat": "wav2vec2bert_stats.pt",
    "s2mel_checkpoint": "s2mel.pth",
    "emo_matrix": "feat2.pt",
    "spk_matrix": "feat1.pt",
    "emo_num": [2, 3, 1, 4, 2, 2, 3, 2],
    "qwen_emo_path": "qwen0.6bemo4-merge/",
    "vocoder": {"type": "bigvgan", "name": "nvidia/bigvgan_v2_22khz_80band_256x"},
    "version": 2.0,
}
TINY_BIGVGAN_CONFIG = {
    "resblock": "1", "upsample_rates": [8, 8, 4], "upsample_kernel_sizes": [16, 16, 8],
    "upsample_initial_channel": 64, "resblock_kernel_sizes": [3, 7, 11],
    "resblock_dilation_sizes": [[1, 3, 5], [1, 3, 5], [1, 3, 5]], "activation": "snakebeta",
    "snake_logscale": True, "use_tanh_at_final": False, "use_bias_at_final": False, "num_mels": 80,
    "n_fft": 1024, "hop_size": 256, "win_size": 1024, "sampling_rate": 22050, "fmin": 0, "fmax": None,
}
# w2v-BERT: upstream needs width 1024 and at least 17 layers; the FFN width is free.
TINY_W2V_OVERRIDES = {"num_hidden_layers": 17, "intermediate_size": 64}

# Lines for the tiny SentencePiece model. The text front end upper-cases non-CJK text and puts
# spaces around CJK characters before encoding, so the corpus is written that way.
BPE_CORPUS = (
    "THE QUICK BROWN FOX JUMPS OVER THE LAZY DOG .",
    "HELLO , THIS IS A TEST OF THE SPEECH SYNTHESIS STUDIO .",
    "I CAN'T BELIEVE IT'S ALREADY TWENTY PAST SEVEN !",
    "WHAT A WONDERFUL DAY TO READ A BOOK ?",
    "ONE TWO THREE FOUR FIVE SIX SEVEN EIGHT NINE TEN HUNDRED THOUSAND",
    "SHE SELLS SEA SHELLS BY THE SEA SHORE , AND HE LAUGHS .",
    "PLEASE SPEAK SLOWLY AND CLEARLY WHEN YOU RECORD YOUR VOICE .",
    "ANGRY HAPPY SAD AFRAID DISGUSTED MELANCHOLIC SURPRISED CALM",
    "ZEBRAS QUIETLY VEX JOVIAL KINGS WITH EXTRA PIZZA",
    "你 好 ， 欢 迎 使 用 语 音 合 成 。",
    "今 天 天 气 很 好 ， 我 们 一 起 去 公 园 散 步 吧 ！",
    "这 是 一 个 测 试 句 子 ， 用 来 检 查 中 文 的 分 词 。",
    "一 二 三 四 五 六 七 八 九 十 百 千 万 年 月 日 点 分",
    "他 说 ： 我 真 的 很 生 气 ， 也 很 难 过 。",
)
BPE_MAX_VOCAB = 256
