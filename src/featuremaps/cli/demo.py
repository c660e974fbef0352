"""``featuremaps demo``: a self-contained HTML report that shows what the library does.

Each section is a function that adds to the report; later features add sections here.
Everything is computed locally from bundled data: no network.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import numpy as np
import typer
from PIL import Image

from featuremaps.cli._common import Overwrite, app
from featuremaps.files import check_outputs

if TYPE_CHECKING:
    from featuremaps.render.report import Report

__all__ = ["DEMO_SAMPLE", "build_demo"]

logger = logging.getLogger(__name__)

DEMO_SAMPLE = "cat"
"""The bundled photo the demo follows through every section."""


def _convolution_section(report: Report) -> None:
    from featuremaps.conv import ConvLayer
    from featuremaps.conv.geometry import output_size_formula
    from featuremaps.images import load_image, samples
    from featuremaps.render.drawing import to_pil
    from featuremaps.render.grid import render_grid
    image = load_image(f"sample:{DEMO_SAMPLE}")
    info = next(s for s in samples() if s.name == DEMO_SAMPLE)
    section = report.section("One convolution layer: stride, depth and padding")
    section.text(
        "An image is an array of pixels, shape C x H x W. A convolution layer holds D filters (small "
        "matrices); each filter slides over the image and its sums of products form one feature map, "
        "so D filters give D maps: the depth of the output. The stride is how many pixels the filter "
        "jumps between two outputs (larger stride, smaller map); padding adds pixels at the borders "
        "(padding 'same' keeps H' = ceil(H / stride))."
    )
    section.figure(to_pil(image), f"Input: sample:{DEMO_SAMPLE}, {info.title} ({info.licence}), "
                   f"shape {list(image.shape)}", name="input")
    bank = "sobel_x,sobel_y,laplacian"
    rows = []
    for padding in (0, "same"):
        for stride in (1, 2, 4):
            layer = ConvLayer(image.shape[0], bank, stride=stride, padding=padding, padding_mode="reflect")
            maps = layer(image)
            formula_h, formula_w = output_size_formula(layer.geometry, (image.shape[1], image.shape[2]))
            shape = "x".join(str(s) for s in maps.shape)
            rows.append([stride, padding, shape, formula_h, formula_w])
            section.figure(
                render_grid(maps, names=layer.filter_names, clip=1.0, scale=0.5, columns=3,
                            title=f"stride {stride}, padding {padding}"),
                f"Bank {bank}, stride {stride}, padding {padding!r}{' (reflect)' if padding else ''}: maps {shape}",
                name=f"conv-stride{stride}-padding{padding}",
            )
    section.text(
        "The same 3 filters at every setting, drawn at the same scale (half a screen pixel per map "
        "unit): depth stays 3, stride 2 halves each side of the map and stride 4 quarters it, and "
        "padding decides whether the border pixels get a full window (padding 0 loses a pixel at each "
        "edge for a 3x3 filter). Reflect padding is used so the borders show no false edges."
    )
    section.table(["stride", "padding", "maps D x H' x W'", "height", "width"], rows)
    for depth in (4, 8):
        layer = ConvLayer(image.shape[0], "gabor", depth=depth, kernel_size=9, stride=2, padding="same",
                          padding_mode="reflect")
        maps = layer(image)
        section.figure(
            render_grid(maps, names=layer.filter_names, clip=1.0, tile_size=120, title=f"Gabor bank, depth {depth}"),
            f"Depth {depth}: {depth} Gabor filters (orientations 180/{depth} degrees apart) give {depth} maps, "
            f"shape {list(maps.shape)}",
            name=f"depth-{depth}",
        )
    layer = ConvLayer(image.shape[0], "sobel_x", stride=2, padding=1)
    explanation = layer.explain(image, filter=0, y=60, x=110)
    section.text("Every value of a map is a sum of products; explain() opens one up:")
    section.code(str(explanation))


def _animation_section(report: Report) -> None:
    from featuremaps.conv import ConvLayer
    from featuremaps.illustrate import ConvScene, image_patch, random_grid
    from featuremaps.render.animate import render_diagram, save_scene
    from featuremaps.render.receptive_diagram import receptive_field_diagram
    section = report.section("Watch the maps form: stride, depth and padding together")
    section.text(
        "A 2-channel 7x5 grid of integers, padded by 1 on every side (grey cells), and 3 filters of 3x3 "
        "integer weights at stride 2. Each frame computes one output value: the window (orange) covers "
        "the same cells on both channels, each channel's patch is multiplied by that channel's slice of "
        "the filter, the sums are added with the bias, and the value lands in the map. The window jumps "
        "2 cells at a time. One frame per output value per filter: 3 x 4 x 3 = 36 frames. Made with "
        "`featuremaps animate --input-size 7x5 --channels 2 --depth 3 --kernel-size 3 --stride 2 "
        "--padding 1 -o conv.gif`."
    )
    layer = ConvLayer(2, "random_int", depth=3, kernel_size=3, stride=2, padding=1)
    scene = ConvScene.from_layer(layer, random_grid(7, 5, 2, seed=0))
    with tempfile.TemporaryDirectory() as scratch:
        gif = Path(scratch) / "conv.gif"
        save_scene(scene, gif)
        section.figure(gif, "The convolution, step by step (36 frames).", name="conv-animation")
        section.figure(render_diagram(scene), "The whole picture at once: the first window, the windows one "
                       "stride to the right and one stride down (dashed, with the jumps), and all 3 maps.",
                       name="conv-diagram")
    crop = image_patch(f"sample:{DEMO_SAMPLE}", 14, 20, channels=3)
    image_layer = ConvLayer(3, "sobel", stride=2, padding=(1, 1, 0, 1), padding_mode="reflect", dilation=(1, 2))
    section.figure(
        render_diagram(ConvScene.from_layer(image_layer, crop, kind="image")),
        "A real image: the cat shrunk to 14x20, its R, G and B channels, reflect padding that is not the "
        "same on every side (1, 1, 0, 1), dilation 1x2 (the taps skip a column) and stride 2: two Sobel maps.",
        name="conv-image-diagram",
    )
    section.text(
        "Stacked layers see more: each unit of a deeper layer depends on a window of the layer below, "
        "which depends on a larger window of the input. The receptive field grows by (kernel - 1) x jump "
        "per layer, and the jump (cumulative stride) multiplies by each stride."
    )
    section.figure(receptive_field_diagram("3,3s2,3", 15), "Receptive field of conv 3x3 -> conv 3x3 stride 2 "
                   "-> conv 3x3: one unit of the last layer sees 9x9 input pixels; neighbouring units' fields are "
                   "2 pixels apart.", name="receptive-field")


def _model_section(report: Report) -> None:
    from featuremaps.data.objects import example_object
    from featuremaps.extract import extract
    from featuremaps.models import list_layers, load_model, model_info
    from featuremaps.render.overlay import rank_maps, render_overlay, render_receptive_field
    from featuremaps.render.overview import describe_layer, render_overview

    section = report.section("Every layer of a CNN, from low to high level")
    photo_model = load_model("builtin:imagenet")
    photo_info = model_info(photo_model)
    photo = f"sample:{DEMO_SAMPLE}"
    photo_layers = {entry.name: entry for entry in list_layers(photo_model)}
    stages = ["bn1", "blocks.0", "blocks.1", "blocks.2", "blocks.3", "blocks.4", "blocks.5", "blocks.6", "bn2"]
    section.text(
        "On a real photo: builtin:imagenet, EfficientNet-Lite0 trained on ImageNet-1k's photos "
        f"({photo_info.weights_label}; it ships with featuremaps and works offline), on the cat. The stem answers to "
        "colour and edges, the middle stages to textures and small parts, and the last stages (stride 32, fields "
        "larger than the image) are 7x7 maps whose strongest units sit where the cat's face is."
    )
    section.figure(render_overview(photo_info.input.display(photo), extract(photo_model, photo, stages), photo_layers,
                                   max_maps=8, title="builtin:imagenet on the cat: low to high"),
                   "Each row is a stage of EfficientNet-Lite0, low to high, its 8 most active maps.",
                   name="imagenet-overview")
    model = load_model("builtin:objects")
    info = model_info(model)
    house = example_object("house")
    section.text(
        "Maps pass from layer to layer: each convolution combines all maps of the layer below, strides "
        "halve their size, and the receptive field (the input region one unit sees) grows, so deeper maps "
        "respond to larger, more complex patterns. Shown here: builtin:objects, a small residual network "
        f"({info.weights_label}) trained on generated objects made of parts (a house is a square body under "
        "a triangle roof, a car a bar on two wheels, ...), on a house it never saw."
    )
    layers = list_layers(model)
    stages = ["stem", "stage1", "stage2", "stage3", "stage4"]
    section.table(
        ["layer", "output C x H x W", "stride (jump)", "receptive field"],
        [[entry.name, "x".join(map(str, entry.output_shape)), int(entry.jump[0]) if entry.jump else "-",
          int(entry.receptive_field[0]) if entry.receptive_field else "-"]
         for entry in layers if entry.name in stages],
    )
    maps = extract(model, house, stages)
    by_name = {entry.name: entry for entry in layers}
    picture = info.input.display(house)
    section.figure(render_overview(picture, maps, by_name, max_maps=10, title="builtin:objects: low to high"),
                   "Each row is a stage: its 10 most active maps. The stem's maps are edges and colours; "
                   "stage4's maps are 8x8 and each unit sees more than the whole image.", name="objects-overview")
    best = rank_maps(maps["stage3"])[0]
    section.figure(render_overlay(picture, maps["stage3"][best], layer=by_name["stage3"],
                                  title=f"stage3 channel {best}"),
                   f"The most active map of stage3 over the input; the box is what its strongest unit sees "
                   f"({describe_layer(by_name['stage3'])}).", name="objects-overlay")
    section.figure(render_receptive_field(picture, by_name["stage2"], 16, 16, channel=0,
                                          value=float(maps["stage2"][0, 16, 16])),
                   "The receptive field of one unit of stage2: 23x23 input pixels.", name="objects-unit")
    resnet = load_model("resnet18")
    image = f"sample:{DEMO_SAMPLE}"
    resnet_maps = extract(resnet, image, "conv1,maxpool,layer1,layer2,layer3,layer4")
    resnet_layers = {entry.name: entry for entry in list_layers(resnet)}
    section.figure(
        render_overview(model_info(resnet).input.display(image), resnet_maps, resnet_layers, max_maps=8,
                        title="ResNet-18 (torchvision): low to high" + model_info(resnet).untrained_note),
        "torchvision's ResNet-18 at 224x224, untrained (random) weights (no download here): strides 2, 4, 4, "
        "8, 16, 32 and receptive fields 7, 11, 43, 99, 211, 435 pixels.", name="resnet18-overview",
    )


def _hierarchy_section(report: Report) -> None:
    from featuremaps.analysis.hierarchy import channel_roles, hierarchy
    from featuremaps.analysis.lineage import lineage
    from featuremaps.data.objects import example_object
    from featuremaps.models import load_model, untrained_like
    from featuremaps.render.hierarchy import render_hierarchy
    from featuremaps.render.lineage import render_lineage

    section = report.section("Parts combine into wholes: the hierarchy, measured, and where a map comes from")
    model = load_model("builtin:objects")
    trained = hierarchy(model, train_samples=900, test_samples=450)
    control = hierarchy(untrained_like(model), train_samples=900, test_samples=450)
    section.text(
        "What can a straight line (a linear probe) read from each stage's pooled maps? On images the model "
        "never saw: the object class, and which parts are present; and how many channels alone detect a "
        "part, or a whole object (told apart from the classes that share its parts). The same architecture "
        "with untrained (random) weights is the control."
    )
    section.figure(render_hierarchy([trained, control]), "Probe accuracy and detectors per stage, trained "
                   "(solid) and untrained (dashed).", name="hierarchy")
    section.code(trained.table() + "\n\n" + control.table())
    stage4 = trained.layers[-1]
    channel, auc = stage4.best_objects.get("house", (0, 0.0))
    result = lineage(model, example_object("house"), f"stage4:{channel}", stations=["stage1", "stage2", "stage3"],
                     levels=2, top=4)
    roles = channel_roles(model, ["stage2", "stage3", "stage4"])
    section.text(
        f"Feature lineage: stage4 channel {channel} is the best house detector (AUC {auc:.2f} against squares, "
        "triangles, trees and cars). Its value on a house splits exactly into the contributions of stage3's "
        "maps (residual skip and branch included), and each of those into stage2's: the tree below, each "
        "card labelled with what that channel detects best."
    )
    section.figure(render_lineage(result, roles=roles), "Lineage of a house unit: children and biases add up to "
                   "each value exactly.", name="lineage-house")


def channel_sheet(layers: tuple[str, ...] = ("stage1", "stage2", "stage3", "stage4"), per_layer: int = 2,
                  steps: int = 128, images: int = 240) -> Image.Image:
    """What channels of builtin:objects detect: for ``per_layer`` channels of each layer, the image optimised
    to excite it above the dataset patches that excite it most (a store of ``images`` generated objects of a
    seed the model never saw, through the microscope)."""
    from featuremaps.batch import ExtractConfig, Store, run_extract
    from featuremaps.batch.microscope import build_microscope, read_patches
    from featuremaps.data.objects import draw_object
    from featuremaps.features import FeatureExtractor
    from featuremaps.models import load_model
    from featuremaps.optvis import channel, render_with_patches, visualize

    model = load_model("builtin:objects")
    with tempfile.TemporaryDirectory(prefix="featuremaps-demo-") as work:
        root = Path(work)
        (root / "images").mkdir()
        for index in range(images):
            Image.fromarray(draw_object(31337, index, 128).image).save(root / "images" / f"{index:04d}.png")
        run_extract(root / "images", root / "store", ExtractConfig(model="builtin:objects", weights="DEFAULT",
                                                                   layers=layers, top_k=3, batch_size=32))
        site = build_microscope(root / "store", root / "site").parent
        stats = Store(root / "store").table("stats").to_pylist()
        chosen: list[tuple[str, int]] = []
        for layer in layers:
            rows = sorted((r for r in stats if r["layer"] == layer),
                          key=lambda r: -(r["max"] - r["mean"]) / max(r["std"], 1e-6))  # most selective first
            chosen += [(layer, int(r["channel"])) for r in rows[:per_layer]]
        patches = [read_patches(site / layer, c) for layer, c in chosen]
    found = visualize(model, [channel(layer, c) for layer, c in chosen], steps=steps)
    fields = {e.name: e.receptive_field for e in FeatureExtractor(model, list(layers)).layers}
    labels = [f"{layer}\nRF {int(field[0])} px" if (field := fields[layer]) else f"{layer}\nglobal"
              for layer in layers]
    return render_with_patches(found, patches, columns=per_layer, row_labels=labels,
                               title="builtin:objects: what channels of each stage detect, low to high")


def _visualization_section(report: Report) -> None:
    section = report.section("What a channel detects: feature visualisation beside dataset patches")
    section.text(
        "For the two most selective channels of each stage of builtin:objects: on top, an image optimised "
        "(128 steps, decorrelated Fourier pixels, random jitter, scale and rotation) to make the channel's "
        "mean as large as possible; below, the three patches of 240 generated objects images that excite it "
        "most (the unit's receptive field, the channel's activation as a heat map). Low stages: colours and "
        "oriented edges; higher ones: corners, curves and parts; stage4: whole-object textures."
    )
    section.figure(channel_sheet(), "Feature visualisation (top) and top dataset patches (below), stage1 to stage4.",
                   name="visualize")


def _recognition_section(report: Report) -> None:

    from featuremaps.data.datasets import shapes_dataset
    from featuremaps.data.shapes import draw_shape
    from featuremaps.models import load_model, model_info
    from featuremaps.recognize.evaluate import evaluate
    from featuremaps.recognize.predict import predict, recognize
    from featuremaps.render.confusion import render_confusion

    section = report.section("Recognising objects from feature maps")
    photo_model = load_model("builtin:imagenet")
    photos = [f"sample:{name}" for name in ("cat", "coffee", "camera", "rocket")]
    section.text("Real photos first: builtin:imagenet (trained on ImageNet-1k, 1,000 classes) names the bundled "
                 "photos; the class activation map shows where its last stage saw the class 'tabby'.")
    section.table(["photo", "top 3"], [[photo, ", ".join(f"{label} {p:.0%}" for label, p in result.labels)]
                                       for photo, result in zip(photos, predict(photo_model, photos))])
    names = list(model_info(photo_model).class_names or [])
    tabby = recognize(photo_model, photos[:1], cam_class=names.index("tabby"))[0]
    section.figure(tabby.overlay(), "Grad-CAM of 'tabby' on the cat.", name="imagenet-cam")
    try:
        model = load_model("builtin:shapes")
    except Exception as error:  # noqa: BLE001 - the demo still shows everything else
        section.text(f"The bundled shapes model is not available ({error}); run 'make shapes-model'.")
        return
    record = model_info(model)
    section.text(
        "A classifier reads the last feature maps and names the object. builtin:shapes is TinyVGG trained "
        "here on the synthetic shapes dataset (circle, square, triangle, star at random sizes, positions, "
        "rotations and colours on flat, gradient, noise and texture backgrounds). Below: images it never "
        "saw (another seed), its top-3 guesses, and a class activation map (Grad-CAM) showing where the "
        f"maps of its last convolution stage drove the decision. Classes: {', '.join(record.class_names or [])}."
    )
    images = [draw_shape(777, i, 64).image for i in range(4)]
    star = np.full((128, 128, 3), 255, np.uint8)
    from PIL import Image, ImageDraw

    canvas = Image.fromarray(star)
    points = [(64 + (44 if k % 2 == 0 else 20) * np.cos(-np.pi / 2 + k * np.pi / 5),
               64 + (44 if k % 2 == 0 else 20) * np.sin(-np.pi / 2 + k * np.pi / 5)) for k in range(10)]
    ImageDraw.Draw(canvas).polygon(points, fill=(220, 20, 20))
    images.append(np.asarray(canvas))
    for k, (image, found) in enumerate(zip(images, recognize(model, images))):
        guesses = ", ".join(f"{label} {p:.0%}" for label, p in found.prediction.labels)
        size = "x".join(str(s) for s in image.shape[:2])
        section.figure(found.overlay(alpha=0.45), f"{size} image: {guesses}; CAM at {found.cam_layer}",
                       name=f"predict-{k}")
    scores = evaluate(model, shapes_dataset(1000, seed=424242, model_input=model_info(model).input))
    section.figure(render_confusion(scores.confusion, scores.class_names, title="builtin:shapes on 1000 new images"),
                   f"Accuracy {scores.accuracy:.1%} on 1000 images of an unseen seed.", name="confusion")


def _segmentation_section(report: Report) -> None:
    from featuremaps.data.shapes import shapes_scene
    from featuremaps.models import load_model
    from featuremaps.render.segmentation import render_segmentation
    from featuremaps.segment.metrics import match_segments, score_masks
    from featuremaps.segment.run import segment_image

    section = report.section("Splitting an image into segments")
    section.text(
        "Feature maps also divide an image into parts. Each pixel gets a hypercolumn: the values of several "
        "layers' maps at that pixel (each map placed by its units' receptive-field centres) plus its colour. "
        "Without labels, k-means groups the hypercolumns into K segments (small specks merged into their "
        "neighbours); with labels, a small per-pixel head (1x1 convolutions) learns to name each pixel."
    )
    scene = shapes_scene(31337, 0, 128)
    try:
        head = load_model("builtin:shapes-seg")
        trained = segment_image(head, scene.image)
        scores = score_masks(trained.mask, scene.mask, classes=len(trained.names))
        section.figure(render_segmentation(trained.image, trained.mask, trained.names, background=0,
                                           title=f"{trained.model} ({trained.weights}), trained head: mIoU "
                                                 f"{scores.miou:.2f}"),
                       f"builtin:shapes-seg on a scene it never saw: each pixel named (mIoU {scores.miou:.2f}, "
                       f"pixel accuracy {scores.pixel_accuracy:.0%}).", name="segment-scene-head")
        backbone = load_model("builtin:shapes")
    except Exception as error:  # noqa: BLE001 - the demo still shows the clusters
        section.text(f"The bundled segmentation head is not available ({error}); run 'make shapes-seg-model'.")
        backbone = load_model("tinyvgg")
    clusters = segment_image(backbone, scene.image, clusters=len(scene.labels) + 1)
    _, matched = match_segments(clusters.mask, scene.mask)
    section.figure(render_segmentation(clusters.image, clusters.mask, clusters.names,
                                       title=f"{clusters.model} ({clusters.weights}), {len(clusters.names)} clusters: "
                                             f"mIoU {matched.miou:.2f} after matching"),
                   f"The same scene, unsupervised: k-means on the hypercolumns of {', '.join(clusters.layers)}; "
                   f"segments matched to the true classes with the Hungarian method score mIoU {matched.miou:.2f}.",
                   name="segment-scene-clusters")
    photo = segment_image(backbone, f"sample:{DEMO_SAMPLE}", clusters=4)
    section.figure(render_segmentation(photo.image, photo.mask, photo.names,
                                       title=f"sample:{DEMO_SAMPLE}: {photo.model} ({photo.weights}), 4 clusters"),
                   f"The sample photo in 4 clusters of {', '.join(photo.layers)} (no labels).", name="segment-photo")


SECTIONS: list[Callable[[Report], None]] = [_convolution_section, _animation_section, _model_section,
                                            _hierarchy_section, _visualization_section, _recognition_section,
                                            _segmentation_section]


def build_demo(out_dir: str | Path = "demo-output", *,
               on_section: Callable[[int, int, str], None] | None = None,
               on_figure: Callable[[str], None] | None = None, overwrite: bool = False) -> Path:
    """Write the demo report into ``out_dir``; return the path of its ``index.html``.

    ``on_section(number, total, name)`` is called as each section starts (a few minutes in all),
    ``on_figure(name)`` as each picture is made.
    A file in ``out_dir`` that featuremaps did not write is replaced only with ``overwrite``.
    """
    from featuremaps.render.report import Report
    check_outputs([Path(out_dir) / "index.html"], overwrite=overwrite)  # before minutes of work
    report = Report(
        "featuremaps demo",
        intro="How a convolution layer turns an image into feature maps, computed on this machine.",
        on_figure=on_figure,
    )
    for number, add_section in enumerate(SECTIONS, start=1):
        name = add_section.__name__.strip("_").removesuffix("_section")
        logger.info("demo: %s", name)
        if on_section is not None:
            on_section(number, len(SECTIONS), name)
        add_section(report)
    return report.write(out_dir, overwrite=overwrite)



@app.command("demo")
def demo_command(
    output: Annotated[Path, typer.Option("-o", "--output", metavar="DIR", help="Folder of the report.")] = Path("demo-output"),
    overwrite: Overwrite = False,
) -> None:
    """Write a self-contained HTML report of what featuremaps does (no network needed)."""
    from featuremaps.cli._progress import Status
    from featuremaps.files import check_outputs

    check_outputs([output / "index.html"], overwrite=overwrite)  # before minutes of work
    status = Status("demo")
    status.step("loading torch and the models' code")

    with status.working() as working:  # a live line with the time spent in a terminal; a line per picture
        page = build_demo(output, on_section=lambda number, total, name: working(f"{number}/{total} {name}"),
                          on_figure=lambda name: status.note(f"  made {name}"), overwrite=overwrite)
    status.done(f"wrote {page}")
    typer.echo(str(page.resolve()))
