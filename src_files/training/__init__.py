"""Training: one step through a few files, each with one role.

train_loop    the loop, read first: train_step, train_one_epoch, evaluate, train (epochs, best.pth, latest.pth)
optimisation  what a step optimises: the loss, the optimiser and its schedule for both recipes, EMA, loss scaler
data          the training data: splits as a TrainTask, the seeded training loader, samplers, train transforms
checkpoint    latest.pth (everything to resume exactly) and best.pth (model-zoo format); RNG states
seeds         every random stream of a run, derived from --seed
speed         speed switches beside the model: device, memory format, compile, DistributedDataParallel
zero_shot     zero-shot queries from the class names (--text-encoder) and query augmentation
"""
