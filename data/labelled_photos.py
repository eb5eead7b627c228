"""The labelled photo set (``data/images/labelled/``): which photo, from where, showing which ImageNet class.

Used by ``data/make_images.py``. Every label was assigned by looking at the photo (the bundled
model's top-5 served as a hint only); photos that show no ImageNet-1k class (windmills, pyramids,
scissors, giraffes, ...) were left out. GCompris' ``explore_world_animals`` is not used beyond
the chameleon of the sample photos: it stays an untouched, independent check.

Sources (all public domain, CC0 or CC-BY, checked per file from the package's own metadata):

* Debian ``gcompris-qt-data``: photos inside the activities' Qt resource archives, licences from
  the ``README`` next to them (``Copyright:``/``License:``/``Source:``/``Files:`` blocks);
* Debian ``lomiri-wallpapers-16.04``: licences from ``/usr/share/doc/lomiri-wallpapers-16.04/copyright``;
* PyPI ``scikit-image``: licence from the docstring of ``skimage.data.<name>``;
* the shipped sample photos of ``data/images/`` (their rows in ``ATTRIBUTION.md`` give the source).
"""
from __future__ import annotations

#: (GCompris activity, path under ``/gcompris/src/activities/<activity>/resource/``, ImageNet class name)
GCOMPRIS = [
    ("categorization", "images/fishes/fish10.webp", "coral reef"),
    ("categorization", "images/fishes/fish25.webp", "goldfish"),
    ("categorization", "images/fishes/fish28.webp", "puffer"),
    ("categorization", "images/fishes/fish9.webp", "anemone fish"),
    ("categorization", "images/monuments/IndiaGate.webp", "triumphal arch"),
    ("categorization", "images/monuments/arcDeTriomphe.webp", "triumphal arch"),
    ("categorization", "images/monuments/brandenburgGate.webp", "triumphal arch"),
    ("categorization", "images/monuments/cathedral.webp", "church"),
    ("categorization", "images/monuments/jucheTower.webp", "obelisk"),
    ("categorization", "images/monuments/kutubMinar.webp", "mosque"),
    ("categorization", "images/monuments/leMusee.webp", "palace"),
    ("categorization", "images/monuments/monument1.webp", "mosque"),
    ("categorization", "images/monuments/monument3.webp", "church"),
    ("categorization", "images/monuments/tajMahal.webp", "dome"),
    ("categorization", "images/monuments/usCapitol.webp", "dome"),
    ("categorization", "images/monuments/zimniPalace.webp", "palace"),
    ("categorization", "images/others/baseball.webp", "baseball"),
    ("categorization", "images/others/bucket.webp", "bucket"),
    ("categorization", "images/others/buffetset.webp", "cup"),
    ("categorization", "images/others/cup.webp", "cup"),
    ("categorization", "images/others/erasers.webp", "rubber eraser"),
    ("categorization", "images/others/pan.webp", "frying pan"),
    ("categorization", "images/others/pillow.webp", "pillow"),
    ("categorization", "images/others/volleyball.webp", "volleyball"),
    ("categorization", "images/others/weighingMachine.webp", "scale"),
    ("categorization", "images/renewable/dam1.webp", "dam"),
    ("categorization", "images/renewable/dam2.webp", "dam"),
    ("categorization", "images/renewable/dam3.webp", "dam"),
    ("categorization", "images/renewable/dam4.webp", "dam"),
    ("categorization", "images/renewable/dam5.webp", "dam"),
    ("categorization", "images/renewable/solar1.webp", "solar dish"),
    ("categorization", "images/renewable/solar2.webp", "solar dish"),
    ("categorization", "images/renewable/solar3.webp", "solar dish"),
    ("categorization", "images/renewable/solar4.webp", "solar dish"),
    ("categorization", "images/renewable/solar5.webp", "solar dish"),
    ("categorization", "images/renewable/solar6.webp", "solar dish"),
    ("categorization", "images/renewable/solar7.webp", "solar dish"),
    ("categorization", "images/renewable/solar8.webp", "solar dish"),
    ("categorization", "images/tools/hammer1.webp", "hammer"),
    ("categorization", "images/tools/hammer2.webp", "hammer"),
    ("categorization", "images/tools/hammer3.webp", "hammer"),
    ("categorization", "images/tools/hammer4.webp", "hammer"),
    ("categorization", "images/tools/hammer5.webp", "hammer"),
    ("categorization", "images/tools/hammer6.webp", "hammer"),
    ("categorization", "images/tools/hammer7.webp", "hammer"),
    ("categorization", "images/tools/hammer8.webp", "hammer"),
    ("categorization", "images/tools/hammer9.webp", "hammer"),
    ("categorization", "images/tools/screwDriver1.webp", "screwdriver"),
    ("categorization", "images/tools/screwDriver2.webp", "screwdriver"),
    ("categorization", "images/tools/screwDriver3.webp", "screwdriver"),
    ("clickgame", "sea3.webp", "coral reef"),
    ("details", "image/EilanDonanCastle_background.webp", "castle"),
    ("erase", "bee.webp", "bee"),
    ("erase", "chamaeleon.webp", "African chameleon"),
    ("erase", "gibbon.webp", "gibbon"),
    ("erase", "kitten.webp", "tabby"),
    ("erase", "red_panda.webp", "lesser panda"),
    ("explore_farm_animals", "animals/chicken.webp", "hen"),
    ("explore_farm_animals", "animals/cow.webp", "ox"),
    ("explore_farm_animals", "animals/pig.webp", "hog"),
    ("explore_farm_animals", "animals/sheep.webp", "ram"),
    ("explore_monuments", "france/chateaudeChambord.webp", "castle"),
    ("explore_monuments", "france/chateaudeChenonceau.webp", "castle"),
    ("explore_monuments", "france/citedeCarcassonne.webp", "castle"),
    ("explore_monuments", "france/montStMichel.webp", "monastery"),
    ("explore_monuments", "france/palaisdesPapes.webp", "palace"),
    ("explore_monuments", "france/pontduGard.webp", "viaduct"),
    ("explore_monuments", "france/reimsCathedral.webp", "church"),
    ("explore_monuments", "germany/berlinCathedral.webp", "church"),
    ("explore_monuments", "germany/neuschwansteinCastle.webp", "castle"),
    ("explore_monuments", "germany/schwerinPalace.webp", "palace"),
    ("explore_monuments", "germany/wormsCathedral.webp", "church"),
    ("explore_monuments", "india/charminar.webp", "mosque"),
    ("explore_monuments", "india/gatewayofIndia.webp", "triumphal arch"),
    ("explore_monuments", "india/greatStupa.webp", "stupa"),
    ("explore_monuments", "india/hawaMahal.webp", "palace"),
    ("explore_monuments", "india/mysorePalace.webp", "palace"),
    ("explore_monuments", "india/victoriaMemorial.webp", "dome"),
    ("explore_monuments", "usa/canyondeChelly.webp", "valley"),
    ("explore_monuments", "usa/navajo.webp", "cliff dwelling"),
    ("explore_world_music", "music/africa.webp", "drum"),
    ("explore_world_music", "music/america.webp", "drum"),
    ("explore_world_music", "music/ireland.webp", "stage"),
    ("explore_world_music", "music/italy.webp", "stage"),
    ("explore_world_music", "music/japan.webp", "drum"),
    ("explore_world_music", "music/orchestra.webp", "stage"),
]

#: (file in ``/usr/share/backgrounds/`` of lomiri-wallpapers-16.04, ImageNet class name)
LOMIRI = [
    ("aitzgorri_by_Aitzol_Berasategi.jpg", "alp"),
    ("picosdeeuropa_by_Aitzol_Berasategi.jpg", "alp"),
    ("friends_by_Aitzol_Berasategi.jpg", "cocker spaniel"),  # two spaniels looking out of a window
    ("Picture_0B_by_freespace.jpg", "fig"),
    ("Picture_1A_by_freespace.jpg", "paintbrush"),
    ("Wine_by_Jakkub_Mede.jpg", "drum"),  # a djembe in front of a table with wine
]

#: (file in ``skimage/data/``, ``skimage.data`` function, ImageNet class name)
SKIMAGE = [
    ("camera.png", "camera", "tripod"),  # the cameraman and his tripod
    ("clock_motion.png", "clock", "wall clock"),  # motion-blurred on purpose: a hard example
]

#: (sample photo already in ``data/images/``, ImageNet class name)
SAMPLES = [
    ("cat.jpg", "tabby"),
    ("coffee.jpg", "espresso"),
    ("grace_hopper.jpg", "military uniform"),
    ("bee.jpg", "bee"),
    ("chameleon.jpg", "agama"),  # an oriental garden lizard, an agamid
    ("bridge.jpg", "suspension bridge"),
    ("dog.jpg", "German shepherd"),
]
