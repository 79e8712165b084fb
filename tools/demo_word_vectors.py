"""Write the demo's word vectors as a word-vector text file (one line per colour and shape word, as GloVe and
fastText's .vec files are), for zero-shot training with class names as queries:

    python tools/demo_word_vectors.py outputs/demo_words.vec
    python train_zsl_nus.py --demo --text-encoder outputs/demo_words.vec --output-dir outputs/demo_zsl_words
    python infer.py --model-path outputs/demo_zsl_words/best.pth --demo --classes "blue cross,red square"

A class name ('red circle') is then the mean of its words' vectors: the demo's unseen colour-shape pairs are
scored from the words alone.
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from src_files.data.demo import demo_word_vectors, write_word_vector_file  # noqa: E402


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('output', help="the .vec file to write")
    args = parser.parse_args(argv)
    os.makedirs(os.path.dirname(os.path.abspath(args.output)), exist_ok=True)
    vectors = demo_word_vectors()
    print(f"{len(vectors)} word vectors written to {write_word_vector_file(args.output, vectors)}")
    return 0


if __name__ == '__main__':
    sys.exit(main())
