"""The MLPerf ResNet-50 transform's constants: shorter side to 256, centre crop 224, ImageNet
mean and standard deviation."""

RESIZE = 256
CROP = 224
MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)
# Pixels arrive as 0..255, so the mean and std are scaled by 255. The reference script fed 0..255
# floats to Normalize(MEAN, STD): the same cost, but meaningless answers with real weights.
MEAN_255 = tuple(m * 255 for m in MEAN)
STD_255 = tuple(s * 255 for s in STD)
