import pytest

from training.schema import DEFAULT_LABEL_CONFIG, LabelConfigError, LabelSchema, load_label_config, parse_label_config


ELEVEN = {
    "gender": ("Female", "Male"),
    "car_recording": ("In Car", "In Lab"),
    "ears_visibility": ("Ears Fully Occluded", "Ears Partly Visible", "Ears Fully Visible"),
    "chin_visibility": ("Chin Fully Visible", "Chin Fully Occluded"),
    "glasses_kind": ("Glasses Kind None", "Glasses Kind Transparent", "Glasses Kind Semi-Transparent",
                     "Glasses Kind Blocking"),
    "mouth_visibility": ("Mouth Fully Visible", "Mouth Fully Occluded"),
    "nose_visibility": ("Nose Fully Visible", "Nose Fully Occluded"),
    "eye_color": ("Green", "Blue", "Brown", "Gray"),
    "face_mask_kind": ("Face Mask Kind None", "Face Mask Kind Black", "Face Mask Kind White", "Face Mask Kind RGB"),
    "wearing_glasses": ("Wears Glasses", "Wears No Glasses"),
    "wearing_face_mask": ("Wears Face Mask", "Wears No Face Mask"),
}


def test_default_config_is_the_eleven_labels_in_order():
    schema = load_label_config()
    assert schema.object_name == "frames" and schema.value_key == "frames"
    assert [(s.name, s.classes) for s in schema.labels] == list(ELEVEN.items())


def test_default_config_stores_the_class_names_while_showing_short_texts():
    """The annotator sees short texts; the alias Label Studio stores is the class name, so the
    schema equals that of a plain config whose values are the class names."""
    from defusedxml import ElementTree as SafeET

    plain = "<View><Image name='frames' valueList='$frames'/>" + "".join(
        f"<Choices name='{name}' toName='frames' choice='single'>"
        + "".join(f"<Choice value='{c}'/>" for c in classes) + "</Choices>" for name, classes in ELEVEN.items()
    ) + "</View>"
    assert load_label_config() == parse_label_config(plain)
    shown = [c.get("value") for c in SafeET.parse(DEFAULT_LABEL_CONFIG).getroot().iter("Choice")]
    assert "Hidden" in shown and "Glasses Kind Blocking" not in shown


def test_alias_is_the_class_and_value_only_the_text():
    xml = ("<View><Image name='x' valueList='$f'/><Choices name='a' toName='x'>"
           "<Choice value='Yes' alias='Wears Glasses'/><Choice value='No'/></Choices></View>")
    assert parse_label_config(xml)["a"].classes == ("Wears Glasses", "No")


@pytest.mark.parametrize("bench", ["nuaa", "facemask"])
def test_benchmark_configs_parse(benchmarks_dir, bench):
    schema = load_label_config(benchmarks_dir / bench / "label_config.xml")
    assert len(schema.labels) >= 1 and all(len(s.classes) >= 2 for s in schema.labels)


def test_recorded_config_parses_with_its_own_classes(recorded_dir):
    schema = load_label_config(recorded_dir / "config_valuelist.xml")
    assert schema["glasses_kind"].classes[0] == "None"
    assert len(schema.labels) == 11


def test_round_trip_dict():
    schema = load_label_config()
    assert LabelSchema.from_dict(schema.to_dict()) == schema


@pytest.mark.parametrize("xml,needle", [
    ("<View><Choices name='a' toName='x'><Choice value='1'/><Choice value='2'/></Choices></View>", "exactly one <Image>"),
    ("<View><Image name='x' valueList='$f'/><Choices name='a' toName='y'><Choice value='1'/>"
     "<Choice value='2'/></Choices></View>", "toName='x'"),
    ("<View><Image name='x' valueList='$f'/><Choices name='a' toName='x' choice='multiple'>"
     "<Choice value='1'/><Choice value='2'/></Choices></View>", "single-choice"),
    ("<View><Image name='x' valueList='$f'/><Choices name='a' toName='x'><Choice value='1'/></Choices></View>",
     "2 distinct"),
    ("<View><Image name='x' valueList='$f'/></View>", "no <Choices>"),
    ("<View><Image", "not valid"),
])
def test_bad_configs_name_the_problem(xml, needle):
    with pytest.raises(LabelConfigError, match=None) as err:
        parse_label_config(xml)
    assert needle in str(err.value)


def test_entity_expansion_is_refused():
    bomb = ('<?xml version="1.0"?><!DOCTYPE v [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;">]>'
            "<View><Image name='x' valueList='$f'/><Choices name='&b;' toName='x'>"
            "<Choice value='1'/><Choice value='2'/></Choices></View>")
    with pytest.raises(LabelConfigError, match="not valid/safe XML"):
        parse_label_config(bomb)
