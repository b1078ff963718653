"""CSVLogger: exact file contents, append mode, flushing per epoch."""
import numpy as np
import pytest

from fastnet.callbacks import CSVLogger, LambdaCallback

LOGS = [{"loss": 0.5, "accuracy": 0.75}, {"loss": 0.25, "accuracy": 0.875},
        {"loss": 0.125, "accuracy": 0.9375}]


def read(path):
    with open(path, newline="") as f:
        return f.read()


def test_rows_and_header(model, drivers, tmp_path):
    path = tmp_path / "log.csv"
    drivers.fit(model, [CSVLogger(path)], epochs=2, epoch_logs=LOGS)
    assert read(path) == "epoch,accuracy,loss\r\n0,0.75,0.5\r\n1,0.875,0.25\r\n"


def test_validation_columns_and_separator(model, drivers, tmp_path):
    path = tmp_path / "log.tsv"
    drivers.fit(model, [CSVLogger(str(path), separator="\t")], epochs=2, epoch_logs=LOGS,
                val_logs=[{"loss": 0.6, "accuracy": 0.7}, {"loss": 0.3, "accuracy": 0.8}])
    assert read(path) == ("epoch\taccuracy\tloss\tval_accuracy\tval_loss\r\n"
                          "0\t0.75\t0.5\t0.7\t0.6\r\n"
                          "1\t0.875\t0.25\t0.8\t0.3\r\n")


def test_overwrite_then_append(model, drivers, tmp_path):
    path = tmp_path / "log.csv"
    path.write_text("old contents\n")
    drivers.fit(model, [CSVLogger(path)], epochs=1, epoch_logs=LOGS)
    assert read(path) == "epoch,accuracy,loss\r\n0,0.75,0.5\r\n"
    drivers.fit(model, [CSVLogger(path, append=True)], epochs=2, epoch_logs=LOGS[1:])
    assert read(path) == ("epoch,accuracy,loss\r\n0,0.75,0.5\r\n"
                          "0,0.875,0.25\r\n1,0.9375,0.125\r\n")


def test_append_to_missing_or_empty_file_writes_the_header(model, drivers, tmp_path):
    for path in (tmp_path / "new.csv", tmp_path / "empty.csv"):
        if path.name == "empty.csv":
            path.write_text("")
        drivers.fit(model, [CSVLogger(path, append=True)], epochs=1, epoch_logs=LOGS)
        assert read(path) == "epoch,accuracy,loss\r\n0,0.75,0.5\r\n"


def test_each_epoch_is_on_disk_when_the_epoch_ends(model, drivers, tmp_path):
    path = tmp_path / "log.csv"
    contents = []
    peek = LambdaCallback(on_epoch_end=lambda e, logs: contents.append(read(path)))
    drivers.fit(model, [CSVLogger(path), peek], epochs=2, epoch_logs=LOGS)
    assert contents == ["epoch,accuracy,loss\r\n0,0.75,0.5\r\n",
                        "epoch,accuracy,loss\r\n0,0.75,0.5\r\n1,0.875,0.25\r\n"]


def test_interrupted_training_leaves_whole_rows(model, drivers, tmp_path):
    path = tmp_path / "log.csv"

    def boom(epoch, logs):
        if epoch == 1:
            raise KeyboardInterrupt

    logger = CSVLogger(path)
    with pytest.raises(KeyboardInterrupt):
        drivers.fit(model, [logger, LambdaCallback(on_epoch_end=boom)], epochs=3, epoch_logs=LOGS)
    assert read(path) == "epoch,accuracy,loss\r\n0,0.75,0.5\r\n1,0.875,0.25\r\n"
    logger.csv_file.close()


def test_missing_values_lists_and_numpy(model, drivers, tmp_path):
    path = tmp_path / "log.csv"
    logs = [{"loss": np.float32(0.5), "extra": [1, 2]}, {"loss": np.array(0.25)}]
    drivers.fit(model, [CSVLogger(path)], epochs=2, epoch_logs=logs)
    assert read(path) == ('epoch,extra,loss\r\n0,"""[1, 2]""",0.5\r\n1,NA,0.25\r\n')


def test_expected_validation_columns_from_the_model(model, drivers, tmp_path):
    # A model that reports val_ metrics gets those columns even before validation ran.
    model.metrics_names = ["loss", "val_loss"]
    path = tmp_path / "log.csv"
    drivers.fit(model, [CSVLogger(path)], epochs=2, epoch_logs=[{"loss": 0.5},
                                                                 {"loss": 0.25, "val_loss": 0.3}])
    assert read(path) == "epoch,loss,val_loss\r\n0,0.5,NA\r\n1,0.25,0.3\r\n"


def test_file_is_closed_after_training(model, drivers, tmp_path):
    cb = CSVLogger(tmp_path / "log.csv")
    drivers.fit(model, [cb], epochs=1, epoch_logs=LOGS)
    assert cb.csv_file.closed
    with pytest.raises(RuntimeError, match="outside training"):
        cb.on_epoch_end(0, {"loss": 1.0})
