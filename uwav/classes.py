"""Class vocabularies (LLP 25, UnAV-100, AVE 28) and the prompts used for their text embeddings.

The index of a class is its position in these tuples; every label array, model and metric uses it.
Sources: data-formats.md §2.3 (LLP), §7 (UnAV label_id order), §8.3 (AVE first-appearance order).
"""

from __future__ import annotations

from uwav.errors import UwavError

LLP_CLASSES: tuple[str, ...] = (
    "Speech", "Car", "Cheering", "Dog", "Cat", "Frying_(food)", "Basketball_bounce", "Fire_alarm",
    "Chainsaw", "Cello", "Banjo", "Singing", "Chicken_rooster", "Violin_fiddle", "Vacuum_cleaner",
    "Baby_laughter", "Accordion", "Lawn_mower", "Motorcycle", "Helicopter", "Acoustic_guitar",
    "Telephone_bell_ringing", "Baby_cry_infant_cry", "Blender", "Clapping",
)

UNAV_CLASSES: tuple[str, ...] = (
    'man speaking', 'woman speaking', 'kid speaking', 'male singing',
    'people laughing', 'car passing by', 'baby laughter', 'wind noise',
    'people clapping', 'people shouting', 'people crowd', 'female singing',
    'dog barking', 'playing acoustic guitar', 'people eating', 'people cheering',
    'basketball bounce', 'engine knocking', 'playing tennis', 'baby babbling',
    'striking bowling', 'playing badminton', 'cat meowing', 'people slapping',
    'playing piano', 'baby crying', 'people burping', 'orchestra',
    'playing drum kit', 'playing violin', 'machine gun shooting', 'child singing',
    'people nose blowing', 'playing electronic organ', 'people sneezing', 'dog howling',
    'skateboarding', 'playing base guitar', 'auto racing', 'sea waves',
    'playing table tennis', 'people coughing', 'people whispering', 'playing ukulele',
    'sheep bleating', 'playing tabla', 'fire truck siren', 'playing volleyball',
    'beat boxing', 'playing trumpet', 'thunder', 'playing cello',
    'playing harp', 'hammering nails', 'people running', 'sailing',
    'telephone bell ringing', 'frog croaking', 'driving motorcycle', 'playing cornet',
    'playing clarinet', 'train wheels squealing', 'playing flute', 'playing trombone',
    'playing erhu', 'bull bellowing', 'raining', 'skidding',
    'chainsawing trees', 'police car siren', 'playing saxophone', 'fireworks banging',
    'driving buses', 'tap dancing', 'airplane flyby', 'people whistling',
    'train horning', 'vacuum cleaner cleaning floors', 'playing accordion', 'bird chirping',
    'vehicle honking', 'church bell ringing', 'playing snare drum', 'playing synthesizer',
    'typing on computer keyboard', 'singing choir', 'lions roaring', 'people slurping',
    'helicopter', 'horse clip-clop', 'water burbling', 'lawn mowing',
    'playing banjo', 'playing zither', 'playing harmonica', 'people battle cry',
    'people sobbing', 'ambulance siren', 'rope skipping', 'hair dryer drying',
)

# AVE: index = order of first appearance in Annotations.txt (matches the released one-hot arrays).
AVE_CLASSES: tuple[str, ...] = (
    "Church bell", "Male speech, man speaking", "Bark", "Fixed-wing aircraft, airplane",
    "Race car, auto racing", "Female speech, woman speaking", "Helicopter", "Violin, fiddle", "Flute",
    "Ukulele", "Frying (food)", "Truck", "Shofar", "Motorcycle", "Acoustic guitar", "Train horn", "Clock",
    "Banjo", "Goat", "Baby cry, infant cry", "Bus", "Chainsaw", "Cat", "Horse", "Toilet flush",
    "Rodents, rats, mice", "Accordion", "Mandolin",
)

# UWAV's released code lists the AVE names alphabetically (commas dropped). Text-embedding rows may
# follow that order; `ave_class_order` in a config picks one, and every output records which.
AVE_CLASSES_ALPHABETICAL: tuple[str, ...] = tuple(sorted(AVE_CLASSES, key=lambda n: n.replace(",", "")))

VOCABULARIES: dict[str, tuple[str, ...]] = {
    "llp": LLP_CLASSES,
    "unav": UNAV_CLASSES,
    "ave": AVE_CLASSES,
    "ave_alphabetical": AVE_CLASSES_ALPHABETICAL,
}


AVE_CLASS_ORDERS = {"dataset": AVE_CLASSES, "alphabetical": AVE_CLASSES_ALPHABETICAL}


def class_names(name: str, ave_class_order: str = "dataset") -> tuple[str, ...]:
    """The class names of vocabulary `name` (llp, unav, ave, ave_alphabetical) in index order.

    For `ave`, `ave_class_order` (dataset or alphabetical) picks the order; it is ignored otherwise.
    """
    if name == "ave":
        if ave_class_order not in AVE_CLASS_ORDERS:
            raise UwavError(f"AVE class order {ave_class_order!r}; expected one of {', '.join(AVE_CLASS_ORDERS)}")
        return AVE_CLASS_ORDERS[ave_class_order]
    try:
        return VOCABULARIES[name]
    except KeyError:
        raise UwavError(f"unknown class vocabulary {name!r}; expected one of {sorted(VOCABULARIES)}") from None


def class_index(names: tuple[str, ...], name: str, where: str) -> int:
    """Index of `name` in `names`; `where` (file and row) goes into the error for an unknown name."""
    try:
        return names.index(name)
    except ValueError:
        raise UwavError(f"{where}: unknown class name {name!r}") from None


def readable(name: str) -> str:
    """'Baby_cry_infant_cry' -> 'baby cry infant cry'; used to fill prompt templates."""
    return name.replace("_", " ").replace("(", "").replace(")", "").lower()


# method.md §2.3: the templates UWAV uses for every dataset.
CLIP_PROMPT = "A photo of {}"
CLAP_PROMPT = "This is the sound of {}"


def prompts(names: tuple[str, ...], template: str) -> list[str]:
    return [template.format(readable(n)) for n in names]
