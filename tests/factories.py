"""factory_boy factories for rows."""

from __future__ import annotations

import factory
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group

from annotation.models import Candidate, SeedExample
from generation.corpus.text import content_hash
from generation.models import Corpus, ModelVersion, Round, Segment
from generation.pipeline import config as round_config


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        django_get_or_create = ("username",)
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user{n}")
    password = factory.PostGenerationMethodCall("set_password", "pw-for-tests")

    @factory.post_generation
    def role(self, create: bool, extracted: str | None, **kwargs) -> None:
        if extracted:
            self.groups.add(Group.objects.get_or_create(name=extracted)[0])
        if create:
            self.save()


class CorpusFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Corpus

    name = factory.Sequence(lambda n: f"corpus {n}")


class SegmentFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Segment

    corpus = factory.SubFactory(CorpusFactory)
    text = factory.Sequence(lambda n: f"Passage number {n} about something worth an instruction.")
    content_hash = factory.LazyAttribute(lambda o: content_hash(o.text))
    char_count = factory.LazyAttribute(lambda o: len(o.text))


class ModelVersionFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = ModelVersion

    name = "test base"
    role = ModelVersion.Role.BASE
    path = factory.Sequence(lambda n: f"/models/m{n}")


class RoundFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Round

    number = factory.Sequence(lambda n: n + 1)
    corpus = factory.SubFactory(CorpusFactory)
    config = factory.LazyFunction(lambda: round_config.validate({}))
    base_model = factory.SubFactory(ModelVersionFactory)


class CandidateFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Candidate

    round = factory.SubFactory(RoundFactory)
    segment = factory.SubFactory(SegmentFactory, corpus=factory.SelfAttribute("..round.corpus"))
    instruction = "Explain the passage."


class SeedExampleFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = SeedExample

    instruction = factory.Sequence(lambda n: f"Instruction {n}?")
    response = "A helpful response."
