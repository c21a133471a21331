"""Small images: the CNN on scikit-learn's 8x8 digits with 40% wrong labels.

``CrustClassifier("cnn")`` uses :class:`sk_crust.SmallCNN`; flat rows of 64 pixels are reshaped to
8x8 images by the module. The callback :class:`sk_crust.CoresetCleanFraction` records how clean
each epoch's coreset is (possible here because we made the noise ourselves). About 30 seconds.
"""

import numpy as np
import torch
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

from sk_crust import CoresetCleanFraction, CrustClassifier, add_label_noise

torch.set_num_threads(1)

X, y = load_digits(return_X_y=True)
X = (X / 16.0).astype(np.float32).reshape(-1, 1, 8, 8)  # (n, channels, height, width)
X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.3, stratify=y,
                                                    random_state=0)
y_noisy, _ = add_label_noise(y_train, 0.4, random_state=0)

net = CrustClassifier("cnn", max_epochs=15, lr=2e-3, batch_size=64, train_split=None,
                      callbacks=[CoresetCleanFraction(y_train)], verbose=0, random_state=0)
net.fit(X_train, y_noisy)

history = net.history
for epoch in (0, 4, 5, len(history) - 1):
    row = history[epoch]
    print(f"epoch {epoch + 1:>2}: trained on {row['coreset_size']:>4} images, "
          f"{row['coreset_clean_fraction']:.0%} of them with the right label")
print(f"clean test accuracy: {np.mean(net.predict(X_test) == y_test):.3f}")
