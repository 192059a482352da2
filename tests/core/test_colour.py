import numpy as np

from pastiche_core.inference import colour


def test_srgb_linear_round_trip():
    x = np.linspace(0, 1, 1001, dtype=np.float32)
    np.testing.assert_allclose(colour.linear_to_srgb(colour.srgb_to_linear(x)), x, atol=1e-5)
    np.testing.assert_allclose(colour.srgb_to_linear(colour.linear_to_srgb(x)), x, atol=1e-5)


def test_known_values_of_the_srgb_transfer_function():
    # 18% grey is about 0.4613 in sRGB; the linear segment starts below 0.0031308.
    np.testing.assert_allclose(colour.linear_to_srgb(np.array([0.18, 1.0, 0.0, 0.001])),
                               [0.46135613, 1.0, 0.0, 0.01292], atol=1e-5)
    np.testing.assert_allclose(colour.srgb_to_linear(np.array([0.5])), [0.21404114], atol=1e-6)


def test_hdr_values_are_clipped_for_the_network():
    assert colour.linear_to_srgb(np.array([4.0, -1.0])).tolist() == [1.0, 0.0]


def test_premultiply_round_trip_and_transparent_pixels():
    rgb = np.array([[[0.2, 0.4, 0.8], [0.5, 0.5, 0.5]]], dtype=np.float32)
    alpha = np.array([[0.5, 0.0]], dtype=np.float32)
    pre = colour.premultiply(rgb, alpha)
    np.testing.assert_allclose(pre[0, 0], [0.1, 0.2, 0.4])
    back = colour.unpremultiply(np.concatenate([pre, alpha[..., None]], axis=2))
    np.testing.assert_allclose(back[0, 0], rgb[0, 0], atol=1e-6)
    assert back[0, 1].tolist() == [0.0, 0.0, 0.0]


def test_preserve_colour_keeps_chroma_and_takes_luminance():
    original = np.array([[[0.8, 0.2, 0.1]]], dtype=np.float32)
    stylized = np.array([[[0.3, 0.3, 0.3]]], dtype=np.float32)
    out = colour.preserve_colour(stylized, original)
    np.testing.assert_allclose(colour.luminance(out), colour.luminance(stylized), atol=1e-6)
    np.testing.assert_allclose(out - colour.luminance(out)[..., None],
                               original - colour.luminance(original)[..., None], atol=1e-6)
