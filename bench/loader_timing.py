"""How the PyTorch peers time a DataLoader: batches for SECONDS after the
first one (worker start-up is not counted), over as many epochs as it takes."""
import time


def time_loader(loader, seconds):
    """Returns (images, elapsed seconds) of the batches taken after the first."""
    images, start, warm = 0, None, True
    while start is None or time.perf_counter() - start < seconds:
        for batch in loader:
            if warm:
                warm, start = False, time.perf_counter()
                continue
            images += batch[0].shape[0]
            if time.perf_counter() - start >= seconds:
                break
    return images, time.perf_counter() - start
